//! The render core: per deployment, in config order, the text deploy would apply with image tags
//! replaced (kubectl: the manifests; Helm: the merged values), plus the objects to apply.
//!
//! Nothing here talks to a cluster. Kustomize runs as a child process, so [`render`] blocks;
//! async callers run it on a blocking thread.

use crate::config::{Config, DeploymentConfig};
use crate::deploy::helm;
use crate::deploy::manifests::{self, ManifestObject};
use crate::deploy::replace::{ImageTable, Replacement, Scope, distinct_image_keys, replace_tags};
use crate::deploy::{DeployError, YamlSyntaxError};
use std::path::{Path, PathBuf};

/// What kind of deployment was rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum RenderedKind {
    /// Manifests applied object by object.
    Kubectl {
        /// The objects, in file and document order, tags replaced.
        objects: Vec<ManifestObject>,
    },
    /// A chart installed with `helm upgrade --install` and the rendered values file.
    Helm {
        /// The values after merging and replacement (the same data as `text`).
        values: serde_json::Value,
    },
}

/// One rendered deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedDeployment {
    /// `deployments[].name`.
    pub name: String,
    /// `deployments[].namespace`, when set.
    pub namespace: Option<String>,
    pub kind: RenderedKind,
    /// kubectl: every manifest (each headed by a `# Source:` comment, joined by `---`);
    /// Helm: the merged values as YAML.
    pub text: String,
    /// Every value set to a configured image's tag, with the file it is in.
    pub replacements: Vec<(PathBuf, Replacement)>,
    /// Notes for the user (unresolvable `tag()` helpers, ...).
    pub warnings: Vec<String>,
}

impl RenderedDeployment {
    /// The image keys this deployment references (to force a redeploy when one was rebuilt).
    pub fn matched_images(&self) -> Vec<&str> {
        distinct_image_keys(self.replacements.iter().map(|(_, r)| r))
    }
}

/// Renders every deployment of `config` in order; `root` is the project directory that relative
/// manifest, values and chart paths resolve against.
pub fn render(
    config: &Config,
    root: &Path,
    table: &ImageTable,
) -> Result<Vec<RenderedDeployment>, DeployError> {
    config
        .deployments
        .iter()
        .map(|deployment| render_deployment(deployment, root, table))
        .collect()
}

/// Renders one deployment.
pub fn render_deployment(
    deployment: &DeploymentConfig,
    root: &Path,
    table: &ImageTable,
) -> Result<RenderedDeployment, DeployError> {
    let name = deployment.name.as_str();
    let mut rendered = RenderedDeployment {
        name: name.to_owned(),
        namespace: deployment.namespace.clone(),
        kind: RenderedKind::Kubectl {
            objects: Vec::new(),
        },
        text: String::new(),
        replacements: Vec::new(),
        warnings: Vec::new(),
    };
    let yaml_error = |path: &Path, source: YamlSyntaxError| DeployError::Yaml {
        deployment: name.to_owned(),
        path: path.to_owned(),
        source,
    };
    if let Some(kubectl) = &deployment.kubectl {
        let replace = kubectl.replace_image_tags != Some(false);
        let sources = manifests::load_manifests_with_args(
            name,
            root,
            &kubectl.manifests,
            kubectl.kustomize == Some(true),
            &kubectl.kustomize_args,
        )?;
        let mut objects = Vec::new();
        let mut texts = Vec::new();
        for source in sources {
            let text = if replace {
                let replaced = replace_tags(&source.text, Scope::Manifest, table)
                    .map_err(|e| yaml_error(&source.path, e))?;
                rendered.absorb(&source.path, replaced.replacements, replaced.warnings);
                replaced.text
            } else {
                source.text
            };
            objects.extend(manifests::manifest_objects(name, &source.path, &text)?);
            texts.push(with_source_header(root, &source.path, &text));
        }
        rendered.text = texts.join("---\n");
        rendered.kind = RenderedKind::Kubectl { objects };
        return Ok(rendered);
    }
    if let Some(helm_config) = &deployment.helm {
        // DevSpace 6 runtime variables in `values` take the tags deploy uses.
        let filled;
        let helm_config = match &helm_config.values {
            Some(values) if values.to_string().contains("${runtime.") => {
                let mut h = helm_config.clone();
                let mut v = values.clone();
                crate::config::v2::runtime::fill_json(&mut v, &|k| table.runtime(k)).map_err(
                    |message| DeployError::Invalid {
                        deployment: name.to_owned(),
                        path: PathBuf::from(format!("<values of {name}>")),
                        message,
                    },
                )?;
                h.values = Some(v);
                filled = h;
                &filled
            }
            _ => helm_config,
        };
        let merged = helm::assemble_values(name, root, helm_config)?;
        let text = values_yaml(name, &merged)?;
        let values_path = PathBuf::from(format!("<values of {name}>"));
        let text = if helm_config.replace_image_tags != Some(false) {
            let replaced = replace_tags(&text, Scope::HelmValues, table)
                .map_err(|e| yaml_error(&values_path, e))?;
            rendered.absorb(&values_path, replaced.replacements, replaced.warnings);
            replaced.text
        } else {
            text
        };
        let values = crate::yaml::from_str(&text).map_err(|message| DeployError::Invalid {
            deployment: name.to_owned(),
            path: values_path,
            message,
        })?;
        rendered.text = text;
        rendered.kind = RenderedKind::Helm { values };
        return Ok(rendered);
    }
    Err(DeployError::Unsupported {
        deployment: name.to_owned(),
    })
}

impl RenderedDeployment {
    fn absorb(&mut self, path: &Path, replacements: Vec<Replacement>, warnings: Vec<String>) {
        self.replacements
            .extend(replacements.into_iter().map(|r| (path.to_owned(), r)));
        self.warnings.extend(
            warnings
                .into_iter()
                .map(|w| format!("deployment `{}`: {}: {w}", self.name, path.display())),
        );
    }
}

/// The merged values as YAML (an empty map renders as `{}`). Block scalars are turned off: a
/// long image reference folded into `>-` would not be a replacement candidate.
fn values_yaml(deployment: &str, values: &serde_json::Value) -> Result<String, DeployError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    let mut text = serde_saphyr::to_string_with_options(values, options).map_err(|e| {
        DeployError::Invalid {
            deployment: deployment.to_owned(),
            path: PathBuf::from(format!("<values of {deployment}>")),
            message: e.to_string(),
        }
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `# Source: <path relative to root>` then the text, ending in a newline.
fn with_source_header(root: &Path, path: &Path, text: &str) -> String {
    let shown = path.strip_prefix(root).unwrap_or(path);
    let mut out = format!("# Source: {}\n{text}", shown.display());
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// What `devspace render` prints: every deployment, headed by its name and kind.
pub fn format_rendered(deployments: &[RenderedDeployment]) -> String {
    deployments
        .iter()
        .map(|d| {
            let what = match d.kind {
                RenderedKind::Kubectl { .. } => "kubectl manifests",
                RenderedKind::Helm { .. } => "helm values",
            };
            format!("# Deployment: {} ({what})\n{}", d.name, d.text)
        })
        .collect::<Vec<_>>()
        .join("---\n")
}
