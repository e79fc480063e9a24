//! The connector catalog: registered connectors filtered by category, role and a search
//! on their code, label and summary. The management API and the console list it alike.

use serde::Deserialize;

use crate::model::{Manifest, Role};

/// What a catalog listing keeps; every part left out keeps everything.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogFilter {
    /// Words that must all appear in the code, label or summary (any case).
    #[serde(default)]
    pub q: Option<String>,
    /// Only connectors listed under this category (any case).
    #[serde(default)]
    pub category: Option<String>,
    /// Only sources, services or exports.
    #[serde(default)]
    #[param(value_type = Option<Role>)]
    pub role: Option<Role>,
}

impl CatalogFilter {
    pub fn matches(&self, manifest: &Manifest) -> bool {
        let role = self.role.is_none_or(|role| manifest.kind.role() == role);
        let category = match self.category.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(wanted) => manifest
                .categories
                .iter()
                .any(|c| c.eq_ignore_ascii_case(wanted)),
        };
        let text = format!(
            "{} {} {}",
            manifest.code,
            manifest.label,
            manifest.summary.as_deref().unwrap_or_default()
        )
        .to_lowercase();
        let words = self.q.as_deref().unwrap_or_default().to_lowercase();
        let found = words.split_whitespace().all(|word| text.contains(word));
        role && category && found
    }
}

/// Every category of `manifests`, sorted, once each (the first spelling of each).
pub fn categories<'m>(manifests: impl IntoIterator<Item = &'m Manifest>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for category in manifests.into_iter().flat_map(|m| &m.categories) {
        if !all.iter().any(|c| c.eq_ignore_ascii_case(category)) {
            all.push(category.clone());
        }
    }
    all.sort_by_key(|c| c.to_lowercase());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(code: &str, kind: &str, categories: &[&str], summary: &str) -> Manifest {
        let text = serde_json::json!({
            "code": code, "label": code.to_uppercase(), "type": kind, "image": "x", "command": "x",
            "categories": categories, "summary": summary,
            "stage": (kind == "data-service").then_some("import"),
            "column_prefix": (kind == "data-service").then_some("___x"),
        });
        Manifest::parse(&text.to_string(), true).unwrap()
    }

    #[test]
    fn filters_by_role_category_and_words() {
        let shop = manifest(
            "shop-orders",
            "data-source",
            &["Commerce"],
            "Orders from the shop",
        );
        let ads = manifest(
            "ads-export",
            "export",
            &["Ads", "Marketing"],
            "Sends products",
        );
        let clean = manifest("cleaner", "data-service", &[], "Trims titles");
        let all = [&shop, &ads, &clean];
        let kept = |filter: CatalogFilter| -> Vec<&str> {
            all.iter()
                .filter(|m| filter.matches(m))
                .map(|m| m.code.as_str())
                .collect()
        };
        assert_eq!(kept(CatalogFilter::default()).len(), 3);
        let role = |role| CatalogFilter {
            role: Some(role),
            ..Default::default()
        };
        assert_eq!(kept(role(Role::Source)), ["shop-orders"]);
        assert_eq!(kept(role(Role::Service)), ["cleaner"]);
        assert_eq!(kept(role(Role::Export)), ["ads-export"]);
        let category = CatalogFilter {
            category: Some("marketing".into()),
            ..Default::default()
        };
        assert_eq!(kept(category), ["ads-export"]);
        let words = CatalogFilter {
            q: Some("ORDERS shop".into()),
            ..Default::default()
        };
        assert_eq!(kept(words), ["shop-orders"]);
        let none = CatalogFilter {
            q: Some("orders".into()),
            role: Some(Role::Export),
            ..Default::default()
        };
        assert!(kept(none).is_empty());
        assert_eq!(categories(all), ["Ads", "Commerce", "Marketing"]);
    }
}
