//! Authentication on management-api: users see their own images only, `/lookup` is
//! for services, printers are registered by admins.

mod helpers;

use helpers::spawn;
use pixpress_testkit::auth;
use serde_json::json;

fn as_user(token: &str) -> reqwest::Client {
    auth::client_as(token)
}

#[tokio::test]
async fn users_see_only_their_own_images() {
    let url = spawn(|_| {});
    let (alice, bob) = (as_user(&auth::user(1)), as_user(&auth::user(2)));
    let res = alice
        .post(format!("{url}/users/1/images"))
        .json(&json!({"url": "http://x/a.jpg", "ready": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].clone();

    let forbidden = bob
        .post(format!("{url}/users/1/images"))
        .json(&json!({"url": "http://x/b.jpg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    for res in [
        bob.get(format!("{url}/users/1/images"))
            .send()
            .await
            .unwrap(),
        bob.get(format!("{url}/users/1/images/{id}"))
            .send()
            .await
            .unwrap(),
        bob.delete(format!("{url}/users/1/images/{id}"))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(res.status(), 404);
    }
    let mine = alice
        .get(format!("{url}/users/1/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);

    let anonymous = reqwest::get(format!("{url}/users/1/images")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn lookup_is_for_services_and_printers_for_admins() {
    let url = spawn(|_| {});
    let lookup = format!("{url}/lookup?user_id=1&file_id=1");
    assert_eq!(
        as_user(&auth::user(1))
            .get(&lookup)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(reqwest::get(&lookup).await.unwrap().status(), 401);
    // A service may ask (there is no image 1: 404, not a refusal).
    assert_eq!(
        as_user(&auth::service())
            .get(&lookup)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    for (token, status) in [(auth::user(1), 403), (auth::admin(), 201)] {
        let res = as_user(&token)
            .put(format!("{url}/printers/5"))
            .json(&json!({"url": "http://p5"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
    }
}
