//! The two calls of a shopping session: `POST /recommendations` (reading `model_version`,
//! `arm` and the items) and `POST /events` (one event per call).

use std::time::Duration;

use model::events::EventType;
use model::rollout::Arm;
use serde::{Deserialize, Serialize};

use crate::client::{ErrorKind, REGION_HINT};

/// What a recommendation answer says, as far as the shopper cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub model_version: String,
    pub arm: Arm,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Item {
    pub item_id: String,
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Deserialize)]
struct AnswerBody {
    #[serde(default)]
    model_version: Option<String>,
    /// Nodes that predate rollouts send no arm: everything they answer is the stable arm.
    #[serde(default)]
    arm: Option<Arm>,
    items: Vec<Item>,
}

#[derive(Serialize)]
struct Ask<'a> {
    user_id: &'a str,
    count: u32,
}

/// One event as `POST /events` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<'a> {
    pub user_id: &'a str,
    pub item_id: &'a str,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Unix seconds.
    pub ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
}

/// A pooled client for one router or node.
#[derive(Debug, Clone)]
pub struct ShopClient {
    http: reqwest::Client,
    recommendations: String,
    events: String,
    count: u32,
}

impl ShopClient {
    pub fn new(target: &str, timeout: Duration, count: u32) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let base = target.trim_end_matches('/');
        Ok(ShopClient {
            http,
            recommendations: format!("{base}/recommendations"),
            events: format!("{base}/events"),
            count,
        })
    }

    /// `region`, when given, goes as `X-Region-Hint`; a session sends its events with the
    /// same hint, so a router sends them where the recommendations came from.
    pub async fn recommend(&self, user_id: &str, region: Option<&str>) -> Result<Answer, ErrorKind> {
        let req = self.http.post(&self.recommendations).json(&Ask { user_id, count: self.count });
        let bytes = self.send(req, region).await?;
        let body: AnswerBody = serde_json::from_slice(&bytes).map_err(|_| ErrorKind::Other)?;
        Ok(Answer {
            model_version: body.model_version.unwrap_or_default(),
            arm: body.arm.unwrap_or(Arm::Stable),
            items: body.items,
        })
    }

    /// With the event's `region` as `X-Region-Hint`.
    pub async fn post_event(&self, event: &Event<'_>) -> Result<(), ErrorKind> {
        self.send(self.http.post(&self.events).json(event), event.region).await.map(drop)
    }

    async fn send(
        &self,
        mut req: reqwest::RequestBuilder,
        region: Option<&str>,
    ) -> Result<Vec<u8>, ErrorKind> {
        if let Some(region) = region {
            req = req.header(REGION_HINT, region);
        }
        let resp = req.send().await.map_err(|e| ErrorKind::of(&e))?;
        let status = resp.status().as_u16();
        // Read the body in every case, so the connection goes back to the pool.
        let body = resp.bytes().await.map_err(|e| ErrorKind::of(&e))?;
        match status {
            200..=299 => Ok(body.to_vec()),
            400..=499 => Err(ErrorKind::Http4xx),
            500..=599 => Err(ErrorKind::Http5xx),
            _ => Err(ErrorKind::Other),
        }
    }
}
