//! The demo's built-in connector (`cde demo-connector`): a data source, like the Python
//! sample's, that needs no image of its own. It runs from the cde executable mounted into
//! an empty image, and speaks the Container API over HTTP as any connector does.

use serde_json::{json, Value};

/// Options arrive as environment variables (`execution_mode: env`).
const NAME: &str = "NAME";
/// Exit status when the Container API cannot be reached or answers with an error.
const EX_API: u8 = 2;

/// Writes three sample products for `$NAME` and logs what it did; the exit status is the
/// run's outcome.
pub async fn run() -> crate::Result<u8> {
    let api = Api {
        url: std::env::var("CONTAINER_API_URL")
            .unwrap_or_else(|_| "http://cde-container-api".into()),
        http: reqwest::Client::new(),
    };
    let name = std::env::var(NAME)
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "world".into());
    match write_products(&api, &name).await {
        Ok(count) => {
            println!("demo connector wrote {count} records for {name}");
            Ok(0)
        }
        Err(e) => {
            eprintln!("demo connector: {e}");
            Ok(EX_API)
        }
    }
}

async fn write_products(api: &Api, name: &str) -> Result<usize, String> {
    api.post(
        "logs/info",
        json!({"message": format!("starting the demo source for {name}")}),
    )
    .await?;
    let records: Vec<Value> = [(1, "9.99"), (2, "19.50"), (3, "4.25")]
        .iter()
        .map(|(n, price)| {
            json!({
                "id": format!("demo-{n}"),
                "title": format!("Demo product {n} for {name}"),
                "price": price,
                "brand": {"name": "Demo Brand", "country": "DE"},
            })
        })
        .collect();
    api.post("output/output", json!({ "data": records }))
        .await?;
    let count = records.len();
    api.post(
        "logs/success",
        json!({"message": format!("wrote {count} records"), "context": {"count": count}}),
    )
    .await?;
    Ok(count)
}

struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Result<(), String> {
        let url = format!("{}/{path}", self.url.trim_end_matches('/'));
        let response = self
            .http
            .post(&url)
            .json(&body)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(format!("POST {url} answered {status}: {}", text.trim()))
    }
}
