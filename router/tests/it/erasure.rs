//! `DELETE /users/{user_id}`: fanned out to every region (drained ones too); a region that
//! is down is answered as pending and retried until done.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_router, wait_until, FakeNode, Opts, Region, TOKEN};

async fn delete(router: &crate::helpers::TestRouter, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = router.client.delete(format!("{}{path}", router.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("router answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_reaches_every_region_and_a_down_one_when_it_is_back() {
    let (a, b, c) = (FakeNode::start("a").await, FakeNode::start("b").await, FakeNode::start("c").await);
    let router = spawn_router(
        &[Region::new(&a, &["b"]), Region::new(&b, &["a"]), Region::new(&c, &["a"])],
        Opts::default(),
    )
    .await;
    router.wait_probed().await;
    assert_eq!(router.failover("b", "drain", Some(TOKEN)).await.status, 200);
    c.down().await;

    // Without the token: nothing sent anywhere.
    let (status, _) = delete(&router, "/users/u1", None).await;
    assert_eq!(status, 401);
    assert!(a.erased().is_empty());

    let (status, body) = delete(&router, "/users/u1", Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["user_id"], "u1");
    let done: Vec<&String> = body["done"].as_object().expect("done").keys().collect();
    assert_eq!(done, ["a", "b"], "the drained region too: {body}");
    assert_eq!(body["done"]["a"]["stream_entries"], 2, "what the node removed: {body}");
    assert!(body["pending"]["c"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert_eq!((a.erased(), b.erased()), (vec!["u1".to_string()], vec!["u1".to_string()]));
    assert_eq!(router.metric("router_erasures_pending").await, 1.0);

    // c comes back: the router finishes the erasure by itself.
    c.up().await;
    wait_until("c to erase u1", Duration::from_secs(10), || async { c.erased() == ["u1"] }).await;
    wait_until("nothing pending", Duration::from_secs(5), || async {
        router.metric("router_erasures_pending").await == 0.0
    })
    .await;
    assert_eq!(a.erased(), ["u1"], "done regions are not asked again");

    // A node that refuses (a bad id) is reported, not retried.
    let (status, body) = delete(&router, "/users/bad%09id", Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["refused"].as_object().map(|o| o.len()), Some(3), "{body}");
    assert_eq!(router.metric("router_erasures_pending").await, 0.0);

    // Other methods on the path: 405 naming DELETE.
    let resp = router.client.get(format!("{}/users/u1", router.base)).send().await.expect("answer");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some("DELETE"));
}
