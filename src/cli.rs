//! Command-line surface (clap derive): commands, global flags and build flags.
//!
//! This module only describes and parses arguments; `commands` turns them into work.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Builds, tags and pushes the images of a devspace.yaml (DevSpace 4.x compatible).
#[derive(Debug, Parser)]
#[command(name = "devspace", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Config file to load (disables the upward search for devspace.yaml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Profile to apply (repeatable; applied in order).
    #[arg(short = 'p', long = "profile", global = true, value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Set a config variable, KEY=VALUE (repeatable; commas separate several, as in DevSpace).
    #[arg(
        long = "var",
        global = true,
        value_name = "KEY=VALUE",
        value_parser = crate::config::vars::check_var_flag
    )]
    pub vars: Vec<String>,
    /// Kubernetes namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Kubernetes context to use (default: the current context).
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub kube_context: Option<String>,
    /// Verbose output: every image's full build log, debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print only errors.
    #[arg(long, global = true, conflicts_with = "debug")]
    pub silent: bool,
    /// Disable colors (also honoured: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// Output format of a build report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines and a summary table.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Flags that control building (build, deploy, dev, render).
#[derive(Debug, Clone, Default, Args)]
pub struct BuildArgs {
    /// Build images one after another, in config order, streaming each full log.
    #[arg(long)]
    pub build_sequential: bool,
    /// Rebuild every image even if nothing changed.
    #[arg(short = 'b', long)]
    pub force_build: bool,
    /// Do not push images after building.
    #[arg(long)]
    pub skip_push: bool,
    /// Use these tags for every image instead of the configured ones (repeatable, comma lists).
    #[arg(
        short = 't',
        long = "tag",
        value_name = "TAG",
        value_delimiter = ',',
        value_parser = crate::image::tag::parse_tag_flag
    )]
    pub tags: Vec<String>,
    /// Do not look images up in (or record them in) the registry content cache: build what
    /// changed here even if another checkout already pushed the same content.
    #[arg(
        long,
        env = "DEVSPACE_NO_REGISTRY_CACHE",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_registry_cache: bool,
    /// Build at most N images at the same time (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_builds: Option<u32>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build (and push) every image whose inputs changed.
    Build {
        #[command(flatten)]
        build: BuildArgs,
        /// Print what would be built and why, without contacting Docker.
        #[arg(long)]
        dry_run: bool,
    },
    /// Build, create pull secrets, replace image tags and deploy.
    Deploy {
        #[command(flatten)]
        build: BuildArgs,
        /// Deploy the recorded tags without building.
        #[arg(long, conflicts_with = "force_build")]
        skip_build: bool,
        /// Write image references as name:tag@digest when the digest is known.
        #[arg(long)]
        use_digests: bool,
    },
    /// Build and deploy, then rebuild and redeploy what changes until Ctrl-C.
    Dev {
        #[command(flatten)]
        build: BuildArgs,
        /// Deploy the recorded tags without building first.
        #[arg(long, conflicts_with = "force_build")]
        skip_build: bool,
        /// Write image references as name:tag@digest when the digest is known.
        #[arg(long)]
        use_digests: bool,
    },
    /// Build, then print the manifests and Helm values deploy would apply.
    Render {
        #[command(flatten)]
        build: BuildArgs,
        /// Render with the recorded tags without building.
        #[arg(long)]
        skip_build: bool,
        /// Write image references as name:tag@digest when the digest is known.
        #[arg(long)]
        use_digests: bool,
    },
    /// Run a pipeline of a DevSpace 6 (v2beta1) config (its own or a built-in one).
    RunPipeline {
        /// The pipeline (`build`, `deploy`, or one under `pipelines:`).
        name: String,
        #[command(flatten)]
        build: BuildArgs,
        /// Do not build images (`build_images` does nothing).
        #[arg(long, conflicts_with = "force_build")]
        skip_build: bool,
        /// Write image references as name:tag@digest when the digest is known.
        #[arg(long)]
        use_digests: bool,
    },
    /// Print the resolved config (after profiles and vars).
    Print {
        /// Print a table of the images instead.
        #[arg(long)]
        images: bool,
        /// Print the DevSpace 6 (`version: v2beta1`) equivalent of the config.
        #[arg(long, conflicts_with = "images")]
        convert: bool,
    },
    /// Verify and store registry credentials, like `docker login`.
    Login {
        /// Registry host (e.g. localhost:5000); Docker Hub when omitted.
        registry: Option<String>,
        /// User name.
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print a shell completion script.
    Completion {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
}
