//! Tag replacement in manifests and Helm values: whatever is written must parse again with
//! the same number of documents.
#![no_main]

use devspace::deploy::{ImageTable, ImageTag, Scope, replace_tags};
use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut tags = IndexMap::new();
    tags.insert(
        "app".to_owned(),
        ImageTag {
            tag: "t1".into(),
            digest: Some(format!("sha256:{}", "0".repeat(64))),
        },
    );
    tags.insert("web".to_owned(), ImageTag::new("t2"));
    let table = ImageTable::from_images(
        [
            ("app", "john/app"),
            ("web", "nginx"),
            ("reg", "localhost:5000/x"),
        ],
        &tags,
        true,
    );
    for scope in [Scope::Manifest, Scope::HelmValues] {
        let Ok(out) = replace_tags(text, scope, &table) else {
            continue;
        };
        let before = devspace::yaml::parse_documents(text).map(|d| d.len());
        let after = devspace::yaml::parse_documents(&out.text).map(|d| d.len());
        assert_eq!(before.ok(), after.ok(), "{text:?} -> {:?}", out.text);
    }
});
