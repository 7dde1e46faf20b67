//! Items: CRUD with validation, keyset pagination, malformed ids, and isolation between users.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn items_crud_with_validation() {
    let app = spawn_app().await;
    let user = app.user().await;

    let r = app
        .post(
            "/v1/items",
            &user.token,
            json!({"title": "  First  ", "description": "d"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["title"], "First");
    assert_eq!(
        r.fields(),
        ["created_at", "description", "id", "title", "updated_at"]
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/items/{id}");

    let r = app.get(&path, &user.token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["description"], "d");

    for bad in [
        json!({"title": ""}),
        json!({"title": "   "}),
        json!({"title": "t".repeat(201)}),
        json!({"title": "ok", "description": "d".repeat(10_001)}),
        json!({"description": "no title"}),
        json!({"title": 5}),
    ] {
        app.post("/v1/items", &user.token, bad)
            .await
            .assert_problem(422);
    }
    // Limits are in characters, not bytes.
    assert_eq!(
        app.post("/v1/items", &user.token, json!({"title": "é".repeat(200)}))
            .await
            .status,
        201
    );

    let r = app
        .patch(&path, &user.token, json!({"title": "Renamed"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["title"], "Renamed");
    assert_eq!(r.body["description"], "d");
    app.patch(&path, &user.token, json!({"title": ""}))
        .await
        .assert_problem(422);
    app.patch(&path, &user.token, json!({"colour": "red"}))
        .await
        .assert_problem(422);

    app.get("/v1/items/not-a-uuid", &user.token)
        .await
        .assert_problem(400);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"title": "x"}))),
        (Method::DELETE, None),
    ] {
        app.send(method, &path, None, body)
            .await
            .assert_problem(401);
    }
    app.send(Method::GET, "/v1/items", None, None)
        .await
        .assert_problem(401);
    app.send(Method::POST, "/v1/items", None, Some(json!({"title": "x"})))
        .await
        .assert_problem(401);

    let r = app.delete(&path, &user.token).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    app.get(&path, &user.token).await.assert_problem(404);
    app.delete(&path, &user.token).await.assert_problem(404);
    app.patch(&path, &user.token, json!({"title": "x"}))
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn items_list_pages_with_an_opaque_keyset_cursor() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            app.item(&user, &format!("item {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    created.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/items?limit=10&cursor={c}"),
            None => "/v1/items?limit=10".to_owned(),
        };
        let r = app.get(&path, &user.token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        for item in r.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(r.body["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let r = app.get("/v1/items", &user.token).await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        20,
        "default limit"
    );
    let r = app.get("/v1/items?limit=100", &user.token).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 25);
    assert!(r.body["next_cursor"].is_null());
    app.get("/v1/items?limit=101", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?limit=0", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?limit=ten", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?cursor=%%%", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?cursor=bm90LWEtdXVpZA", &user.token)
        .await
        .assert_problem(400);
}

#[tokio::test]
async fn another_users_rows_are_not_found() {
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let item = app.item(&alice, "alice's").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());

    app.get(&path, &bob.token).await.assert_problem(404);
    app.patch(&path, &bob.token, json!({"title": "mine now"}))
        .await
        .assert_problem(404);
    app.delete(&path, &bob.token).await.assert_problem(404);
    assert_eq!(
        app.get("/v1/items", &bob.token).await.body["items"],
        json!([])
    );
    // Alice's item is unchanged.
    let r = app.get(&path, &alice.token).await;
    assert_eq!(r.body["title"], "alice's");
    // A cursor pointing into Alice's items shows Bob nothing of hers either.
    let cursor = fn_items::encode_cursor(Uuid::max());
    let r = app
        .get(&format!("/v1/items?cursor={cursor}"), &bob.token)
        .await;
    assert_eq!(r.body["items"], json!([]));
}

#[tokio::test]
async fn malformed_ids_are_400_on_every_item_route() {
    let app = spawn_app().await;
    let user = app.user().await;
    app.get("/v1/items/123", &user.token)
        .await
        .assert_problem(400);
    app.patch("/v1/items/123", &user.token, json!({"title": "x"}))
        .await
        .assert_problem(400);
    app.delete("/v1/items/123", &user.token)
        .await
        .assert_problem(400);
}
