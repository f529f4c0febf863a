//! `devspace print`: the resolved config as YAML, or (`--images`) a table of the images with
//! paths relative to the project root. Loads the config and nothing else: no async runtime,
//! no network, no Docker or Kubernetes.

use crate::cli::GlobalArgs;
use crate::config::{self, ConfigError, LoadOptions, Loaded};
use crate::exit::ExitCode;
use std::io::{IsTerminal, Write};
use std::path::{Component, Path, PathBuf};

/// Builds the loader options from the global flags (shared by every command).
pub fn load_options(global: &GlobalArgs) -> Result<LoadOptions, ConfigError> {
    let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    let mut opts = LoadOptions {
        config_path: global.config.clone(),
        cwd,
        profiles: global.profiles.clone(),
        vars: global.vars.clone(),
        interactive: std::io::stdin().is_terminal(),
        cached_vars: Default::default(),
        kube_context: global.kube_context.clone(),
        namespace: global.namespace.clone(),
        no_commands: false,
    };
    // Answers cached by earlier runs count like DevSpace's; a missing config is reported by
    // the load itself.
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Ok(path) = config::find_config(&opts, home.as_deref())
        && let Some(root) = path.parent()
    {
        opts.cached_vars = config::read_cached_vars(root);
    }
    Ok(opts)
}

/// Prints a config error the way every command does: `error:` lines, then a `hint:`.
pub fn report_error(err: &ConfigError) -> ExitCode {
    eprintln!("error: {err}");
    if let Some(hint) = err.hint() {
        eprintln!("hint: {hint}");
    }
    err.exit_code()
}

/// Prints the resolved config (or, with `images`, a table of the images; with `convert`, its
/// DevSpace 6 form). A DevSpace 6 config prints in its own (v2beta1) shape.
pub fn run(global: &GlobalArgs, images: bool, convert: bool) -> ExitCode {
    let loaded = match load_options(global).and_then(|o| config::load(&o)) {
        Ok(l) => l,
        Err(e) => return report_error(&e),
    };
    if !global.silent {
        if std::env::current_dir().is_ok_and(|cwd| cwd != loaded.source.root)
            && global.config.is_none()
        {
            eprintln!(
                "info: using devspace config in {}",
                loaded.source.root.display()
            );
        }
        for w in &loaded.warnings {
            eprintln!("warn: {w}");
        }
    }
    if global.debug && !loaded.unused_sections.is_empty() {
        eprintln!(
            "debug: sections not used by this tool: {}",
            loaded.unused_sections.join(", ")
        );
    }
    let v2 = convert || loaded.config.version == config::v2::VERSION;
    let text = if images {
        images_table(&loaded)
    } else if v2 {
        let (doc, notes) = config::v2::convert::to_v2(&loaded.config, &loaded.source.root);
        if !global.silent {
            for n in &notes {
                eprintln!("warn: {n}");
            }
        }
        match serde_saphyr::to_string(&doc) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot render the config as YAML: {e}");
                return ExitCode::Failure;
            }
        }
    } else {
        match serde_saphyr::to_string(&loaded.config) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot render the config as YAML: {e}");
                return ExitCode::Failure;
            }
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    ExitCode::Success
}

/// The `--images` table: key, image, tags, dockerfile, context, builder.
pub fn images_table(loaded: &Loaded) -> String {
    let root = &loaded.source.root;
    let header = ["KEY", "IMAGE", "TAGS", "DOCKERFILE", "CONTEXT", "BUILDER"].map(String::from);
    let rows: Vec<[String; 6]> = loaded
        .config
        .images
        .iter()
        .map(|(key, img)| {
            [
                key.clone(),
                img.image.clone(),
                if img.tags.is_empty() {
                    "(random)".to_string()
                } else {
                    img.tags.join(",")
                },
                relative(&img.dockerfile, root),
                relative(&img.context, root),
                img.builder_kind().to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no images defined\n".to_string();
    }
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `path` relative to `root` (`.` for the root itself, `../x` outside it).
pub fn relative(path: &Path, root: &Path) -> String {
    if let Ok(rest) = path.strip_prefix(root) {
        let s = rest.display().to_string();
        return if s.is_empty() { ".".into() } else { s };
    }
    let p: Vec<Component> = path.components().collect();
    let r: Vec<Component> = root.components().collect();
    let common = p.iter().zip(&r).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return path.display().to_string();
    }
    let mut out = PathBuf::new();
    for _ in common..r.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let root = Path::new("/p/proj");
        let cases = [
            ("/p/proj", "."),
            ("/p/proj/Dockerfile", "Dockerfile"),
            ("/p/proj/a/b", "a/b"),
            ("/p/Dockerfile", "../Dockerfile"),
            ("/p/other/x", "../other/x"),
            ("/elsewhere/Dockerfile", "/elsewhere/Dockerfile"),
        ];
        for (input, want) in cases {
            assert_eq!(relative(Path::new(input), root), want, "{input}");
        }
    }
}
