//! Event matchers and notification rules: the admin API, what a request hands to the queue,
//! and what the consumer does with each message (delivered, retried with backoff, dead).

mod support;

use std::cell::Cell;

use async_trait::async_trait;
use futures::executor::block_on;
use gatehouse_core::db::{Row, Value};
use gatehouse_core::error::InternalError;
use gatehouse_core::events::delivery::{self, Consumer, Message, Outcome};
use gatehouse_core::events::enqueue::{after_request, ActiveRules, MAX_AGE_MS};
use gatehouse_core::events::webhook::{self, WebhookSecret};
use gatehouse_core::events::{Capturing, Recorded};
use gatehouse_core::http::Method;
use gatehouse_core::mail::{Delivery, MailKind};
use gatehouse_core::ports::{Clock, Db};
use gatehouse_core::store::events;
use gatehouse_core::testing::{FakeWebhook, MemCounters, MemMailer, MemQueue};
use gatehouse_core::types::event_kind::EventKind;
use serde_json::json;
use support::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn webhook_rule(env: &TestEnv, body: serde_json::Value) -> serde_json::Value {
    let r = env.admin(Method::Post, "/admin/api/notification-rules", Some(body));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json_body()
}

fn locked_rule(env: &TestEnv) -> String {
    let v = webhook_rule(
        env,
        json!({
            "name": "Lockouts",
            "match": {"kinds": ["account_locked"]},
            "transport": {"type": "webhook", "url": "https://hooks.example.com/in", "secret": SECRET}
        }),
    );
    v["id"].as_str().unwrap().to_owned()
}

fn event(kind: &str, user: Option<&str>, detail: serde_json::Value) -> Recorded {
    Recorded {
        id: "evt_test1".into(),
        kind: kind.into(),
        user_id: user.map(Into::into),
        client_id: None,
        ip: Some("203.0.113.7".into()),
        detail,
        created_at: T0,
    }
}

struct Ports {
    counters: MemCounters,
    queue: MemQueue,
    post: FakeWebhook,
    mailer: MemMailer,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            counters: MemCounters::default(),
            queue: MemQueue::default(),
            post: FakeWebhook::default(),
            mailer: MemMailer::default(),
        }
    }
    fn consumer<'a>(&'a self, env: &'a TestEnv) -> Consumer<'a> {
        Consumer {
            settings: &env.settings,
            sealing_key: env.secrets.sealing_key.as_ref(),
            db: &env.db,
            rng: &env.rng,
            clock: &env.clock,
            queue: &self.queue,
            post: &self.post,
            counters: &self.counters,
            mailer: &self.mailer,
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

// ---- admin API ----

#[test]
fn a_webhook_secret_is_shown_once_when_gatehouse_makes_it_and_never_again() {
    let env = TestEnv::new();
    let made = webhook_rule(
        &env,
        json!({"name": "All", "transport": {"type": "webhook", "url": "https://hooks.example.com/in"}}),
    );
    let secret = made["transport"]["secret"].as_str().unwrap();
    assert!(WebhookSecret::parse(secret).is_ok(), "{secret}");
    let id = made["id"].as_str().unwrap();
    for r in [
        env.admin(Method::Get, &format!("/admin/api/notification-rules/{id}"), None),
        env.admin(Method::Get, "/admin/api/notification-rules", None),
    ] {
        assert_eq!(r.status, 200);
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert!(body.contains("\"secret\":\"set\""), "{body}");
        assert!(!body.contains(secret) && !body.contains("whsec_"), "{body}");
    }
    let given = webhook_rule(
        &env,
        json!({"name": "Given", "transport": {"type": "webhook", "url": "https://h.example/x", "secret": SECRET}}),
    );
    assert_eq!(
        given["transport"]["secret"], "set",
        "a secret the admin gave is not echoed"
    );
}

#[test]
fn rule_changes_are_validated_audited_and_keep_the_secret_unless_replaced() {
    let env = TestEnv::new();
    let id = locked_rule(&env);
    let path = format!("/admin/api/notification-rules/{id}");
    let sealed_before = env.db.text(&format!(
        "SELECT secret_sealed FROM notification_rules WHERE id = '{id}'"
    ));
    let r = env.admin(
        Method::Put,
        &path,
        Some(json!({"name": "Renamed", "enabled": false, "transport": {"type": "webhook", "url": "https://h.example/y"}})),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json_body()["enabled"], false);
    let sealed_after = env.db.text(&format!(
        "SELECT secret_sealed FROM notification_rules WHERE id = '{id}'"
    ));
    assert_eq!(sealed_before, sealed_after);

    for (body, says) in [
        (
            json!({"name": "x", "transport": {"type": "webhook", "url": "http://hooks.example.com/"}}),
            "https",
        ),
        (
            json!({"name": "x", "transport": {"type": "webhook", "url": "http://127.0.0.1:9/"}}),
            "https",
        ),
        (
            json!({"name": "x", "match": {"kinds": ["logged_in"]}, "transport": {"type": "email", "to": ["user"]}}),
            "logged_in",
        ),
        (
            json!({"name": "x", "match": {"expression": "a".repeat(2049)}, "transport": {"type": "email", "to": ["user"]}}),
            "2048",
        ),
        (
            json!({"name": "x", "transport": {"type": "email", "to": ["a@b.example\nBcc: c@d.example"]}}),
            "transport.to",
        ),
        (
            json!({"name": "x", "transport": {"type": "webhook", "url": "https://h.example", "secret": "whsec_AAAA"}}),
            "24 to 64",
        ),
    ] {
        let r = env.admin(Method::Post, "/admin/api/notification-rules", Some(body.clone()));
        assert_eq!(r.status, 400, "{body}");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(text.contains(says), "{text} should say {says}");
    }
    assert_eq!(env.admin(Method::Delete, &path, None).status, 204);
    assert_eq!(env.admin(Method::Get, &path, None).status, 404);
    assert_eq!(env.admin(Method::Delete, &path, None).status, 404);
    for kind in [
        EventKind::AdminNotificationRuleCreated,
        EventKind::AdminNotificationRuleUpdated,
        EventKind::AdminNotificationRuleDeleted,
    ] {
        let n = env.db.count(&format!(
            "SELECT COUNT(*) FROM events WHERE kind = '{}' AND json_extract(detail, '$.rule') = '{id}'",
            kind.as_str()
        ));
        assert_eq!(n, 1, "{}", kind.as_str());
    }
}

#[test]
fn webhook_rules_need_the_sealing_key() {
    let mut env = TestEnv::new();
    env.secrets.sealing_key = None;
    let r = env.admin(
        Method::Post,
        "/admin/api/notification-rules",
        Some(json!({"name": "x", "transport": {"type": "webhook", "url": "https://h.example"}})),
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("GATEHOUSE_SEALING_KEY"));
}

#[test]
fn the_number_of_rules_is_bounded() {
    let env = TestEnv::new();
    let now = T0;
    for i in 0..gatehouse_core::events::rules::MAX_RULES {
        env.db.exec(&format!(
            "INSERT INTO notification_rules (id, name, enabled, criteria, transport, created_at, updated_at) \
             VALUES ('ntf_{i}', 'r', 1, '{{}}', '{{\"type\":\"email\",\"to\":[\"user\"]}}', {now}, {now})"
        ));
    }
    let one_more = || {
        TestEnv::admin_request(
            Method::Post,
            "/admin/api/notification-rules",
            Some(json!({"name": "one more", "transport": {"type": "email", "to": ["user"]}})),
        )
    };
    // Through the request's capturing view of the database, as the Worker sends it.
    let capturing = Capturing::new(&env.db);
    assert_eq!(env.send_with_db(&capturing, one_more()).status, 409);
    let audited = || {
        env.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'admin_notification_rule_created'")
    };
    assert_eq!(audited(), 0, "a refused create records no change");
    assert!(capturing.take().is_empty(), "and nothing is notified of it");
    env.db.exec("DELETE FROM notification_rules WHERE id = 'ntf_0'");
    assert_eq!(env.send_with_db(&capturing, one_more()).status, 201);
    assert_eq!(audited(), 1, "the create under the cap is recorded");
    let seen = capturing.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind, "admin_notification_rule_created");
}

#[test]
fn the_dry_run_says_whether_a_rule_matches_and_sends_nothing() {
    let env = TestEnv::new();
    let user = env.create_user("ann", "a long enough password");
    env.db
        .exec(&format!("UPDATE users SET groups = '[\"staff\"]' WHERE id = '{user}'"));
    let v = webhook_rule(
        &env,
        json!({"name": "Staff lockouts", "match": {"kinds": ["account_locked"], "groups": ["staff"]},
               "transport": {"type": "webhook", "url": "https://h.example"}}),
    );
    let path = format!("/admin/api/notification-rules/{}/test", v["id"].as_str().unwrap());
    let ask = |e: serde_json::Value| env.admin(Method::Post, &path, Some(json!({ "event": e })));
    let yes = ask(json!({"kind": "account_locked", "user_id": user}));
    assert_eq!(yes.status, 200);
    assert_eq!(yes.json_body()["matches"], true, "groups read from the stored user");
    assert_eq!(
        ask(json!({"kind": "login_failed", "user_id": user})).json_body()["matches"],
        false
    );
    assert_eq!(
        ask(json!({"kind": "account_locked", "user_id": user, "groups": ["other"]})).json_body()["matches"],
        false
    );
    assert_eq!(ask(json!({"kind": "nope"})).status, 400);
    assert_eq!(
        env.admin(
            Method::Post,
            "/admin/api/notification-rules/ntf_missing/test",
            Some(json!({"event": {"kind": "login_failed"}}))
        )
        .status,
        404
    );
}

#[test]
fn dead_letters_are_listed_newest_first_in_bounded_pages() {
    let env = TestEnv::new();
    let ports = Ports::new();
    let c = ports.consumer(&env);
    for i in 0..3 {
        env.clock.advance(1);
        let out = block_on(delivery::handle(&c, &format!("not json {i}")));
        assert!(matches!(out, Outcome::Dead { .. }), "{out:?}");
    }
    let r = env.admin(Method::Get, "/admin/api/notification-rules/dead-letters?limit=2", None);
    assert_eq!(r.status, 200);
    let v = r.json_body();
    let list = v["dead_letters"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["message"], "not json 2");
    assert!(list[0]["reason"].as_str().unwrap().contains("unreadable message"));
    let rest = env.admin(
        Method::Get,
        "/admin/api/notification-rules/dead-letters?limit=2&offset=2",
        None,
    );
    assert_eq!(rest.json_body()["dead_letters"].as_array().unwrap().len(), 1);
}

// ---- what a request hands to the queue ----

/// A database that counts the queries it was asked.
struct Counting<'a> {
    inner: &'a dyn Db,
    queries: Cell<u32>,
}

#[async_trait(?Send)]
impl Db for Counting<'_> {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, InternalError> {
        self.queries.set(self.queries.get() + 1);
        self.inner.query(sql, params).await
    }
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, InternalError> {
        self.inner.execute(sql, params).await
    }
    async fn batch(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<u64>, InternalError> {
        self.inner.batch(statements).await
    }
}

#[test]
fn a_request_that_records_no_event_costs_no_database_read_and_sends_nothing() {
    let env = TestEnv::new();
    let counting = Counting {
        inner: &env.db,
        queries: Cell::new(0),
    };
    let queue = MemQueue::default();
    let out = block_on(after_request(&counting, &queue, &env.settings, None, 0, &[])).unwrap();
    assert!(out.is_none());
    assert_eq!(counting.queries.get(), 0);
    assert!(queue.drain().is_empty());
}

#[test]
fn the_events_a_request_commits_are_captured_and_matching_ones_queued() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let capturing = Capturing::new(&env.db);
    // Recorded alone, and in a batch with a change, as endpoints do.
    let e = |kind| events::Event {
        kind,
        user_id: Some("usr_1"),
        client_id: None,
        ip: Some("198.51.100.1"),
        location: None,
        detail: json!({"n": 1}),
    };
    block_on(events::record(&capturing, &env.rng, T0, e(EventKind::AccountLocked))).unwrap();
    let st = events::record_statement(&env.rng, T0, e(EventKind::LoginFailed)).unwrap();
    block_on(capturing.batch(&[st])).unwrap();
    // A batch that fails records nothing, and nothing is captured from it.
    let bad = events::record_statement(&env.rng, T0, e(EventKind::AccountLocked)).unwrap();
    assert!(block_on(capturing.batch(&[bad, ("INSERT INTO nowhere VALUES (1)", vec![])])).is_err());
    let seen = capturing.take();
    assert_eq!(
        seen.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        ["account_locked", "login_failed"]
    );
    assert_eq!(seen[0].detail, json!({"n": 1}));
    assert_eq!(seen[0].user_id.as_deref(), Some("usr_1"));

    let queue = MemQueue::default();
    let rules = block_on(after_request(&env.db, &queue, &env.settings, None, 5, &seen))
        .unwrap()
        .unwrap();
    let sent = queue.drain();
    assert_eq!(sent.len(), 1, "only the lockout matches");
    let m: Message = serde_json::from_str(&sent[0].0).unwrap();
    assert_eq!(
        (m.rule.as_str(), m.event.kind.as_str(), m.attempt, sent[0].1),
        (rule.as_str(), "account_locked", 0, 0)
    );
    // `enqueue` says how many it sent: one per (event, matching rule).
    let twice = [seen.clone(), seen.clone()].concat();
    assert_eq!(
        block_on(gatehouse_core::events::enqueue::enqueue(
            &env.db, &queue, &rules, &twice
        ))
        .unwrap(),
        2
    );
    assert_eq!(queue.drain().len(), 2);

    // The rules are read once per MAX_AGE_MS: a rule deleted meanwhile still matches here (the
    // consumer skips it), and after the age they are read again.
    env.db.exec("DELETE FROM notification_rules");
    let again = block_on(after_request(
        &env.db,
        &queue,
        &env.settings,
        Some(rules.clone()),
        5 + MAX_AGE_MS - 1,
        &seen,
    ))
    .unwrap();
    assert_eq!(queue.drain().len(), 1);
    block_on(after_request(
        &env.db,
        &queue,
        &env.settings,
        again,
        5 + MAX_AGE_MS,
        &seen,
    ))
    .unwrap();
    assert_eq!(queue.drain().len(), 0);
    let _: ActiveRules = rules;
}

#[test]
fn a_rule_change_applies_at_once_in_the_isolate_that_made_it() {
    let env = TestEnv::new();
    let queue = MemQueue::default();
    let stale = block_on(ActiveRules::load(&env.db, &env.settings, 0)).unwrap();
    let capturing = Capturing::new(&env.db);
    let r = env.send_with_db(
        &capturing,
        TestEnv::admin_request(
            Method::Post,
            "/admin/api/notification-rules",
            Some(
                json!({"name": "n", "match": {"kinds": ["admin_notification_rule_created"]},
                        "transport": {"type": "email", "to": ["sec@example.com"]}}),
            ),
        ),
    );
    assert_eq!(r.status, 201);
    let seen = capturing.take();
    let rules = block_on(after_request(&env.db, &queue, &env.settings, Some(stale), 1, &seen))
        .unwrap()
        .unwrap();
    assert_eq!(rules.rules.len(), 1, "read again although the cache was fresh");
    assert_eq!(queue.drain().len(), 1, "the new rule saw its own creation");
}

#[test]
fn an_admin_change_through_the_api_is_captured_for_notification() {
    let env = TestEnv::new();
    let capturing = Capturing::new(&env.db);
    let r = env.send_with_db(
        &capturing,
        TestEnv::admin_request(
            Method::Post,
            "/admin/api/notification-rules",
            Some(json!({"name": "n", "transport": {"type": "email", "to": ["sec@example.com"]}})),
        ),
    );
    assert_eq!(r.status, 201);
    let seen = capturing.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind, "admin_notification_rule_created");
}

// ---- the consumer ----

fn first_message(rule: &str, e: &Recorded) -> String {
    Message::first(rule, e).to_json().unwrap()
}

#[test]
fn a_webhook_is_signed_per_standard_webhooks_and_delivered() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let ports = Ports::new();
    let e = event("account_locked", Some("usr_1"), json!({"failures": 5}));
    let out = block_on(delivery::handle(&ports.consumer(&env), &first_message(&rule, &e)));
    assert_eq!(out, Outcome::Delivered);
    let posts = ports.post.posts.borrow();
    let (url, headers, body) = &posts[0];
    assert_eq!(url, "https://hooks.example.com/in");
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let ts: i64 = header(headers, "webhook-timestamp").parse().unwrap();
    assert_eq!(ts, env.clock.now());
    assert!(webhook::verify(
        &secret,
        header(headers, "webhook-id"),
        ts,
        body,
        header(headers, "webhook-signature")
    ));
    assert_eq!(header(headers, "content-type"), "application/json");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "account_locked");
    assert_eq!(v["data"]["detail"]["failures"], 5);
}

#[test]
fn a_failing_receiver_is_retried_with_backoff_under_the_same_webhook_id_then_dead_lettered() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let ports = Ports::new();
    ports.post.answers.borrow_mut().extend([500; 10]);
    let c = ports.consumer(&env);
    let mut body = first_message(&rule, &event("account_locked", None, json!({})));
    let mut delays = Vec::new();
    loop {
        match block_on(delivery::handle(&c, &body)) {
            Outcome::Requeued { attempt, delay } => {
                let (next, d) = ports.queue.drain().pop().unwrap();
                assert_eq!(d, delay);
                assert_eq!(serde_json::from_str::<Message>(&next).unwrap().attempt, attempt);
                delays.push(delay);
                body = next;
            }
            Outcome::Dead { reason } => {
                assert!(
                    reason.contains("gave up after 6 attempts") && reason.contains("500"),
                    "{reason}"
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(delays, [10, 60, 300, 1800, 7200]);
    let ids: std::collections::HashSet<String> = ports
        .post
        .posts
        .borrow()
        .iter()
        .map(|(_, h, _)| header(h, "webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same webhook-id");
    assert_eq!(ports.post.posts.borrow().len(), 6);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM notification_dead_letters WHERE attempts = 6"),
        1
    );
}

#[test]
fn a_receiver_that_recovers_gets_the_retry() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let ports = Ports::new();
    ports.post.answers.borrow_mut().push_back(503);
    let c = ports.consumer(&env);
    let first = first_message(&rule, &event("account_locked", None, json!({})));
    assert_eq!(
        block_on(delivery::handle(&c, &first)),
        Outcome::Requeued { attempt: 1, delay: 10 }
    );
    let (retry, _) = ports.queue.drain().pop().unwrap();
    assert_eq!(block_on(delivery::handle(&c, &retry)), Outcome::Delivered);
    let posts = ports.post.posts.borrow();
    assert_eq!(header(&posts[0].1, "webhook-id"), header(&posts[1].1, "webhook-id"));
}

#[test]
fn a_permanent_refusal_is_dead_at_once_and_throttling_is_retried() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let ports = Ports::new();
    let c = ports.consumer(&env);
    let msg = first_message(&rule, &event("account_locked", None, json!({})));
    ports.post.answers.borrow_mut().push_back(410);
    assert!(matches!(block_on(delivery::handle(&c, &msg)), Outcome::Dead { reason } if reason.contains("410")));
    for status in [408, 429] {
        ports.post.answers.borrow_mut().push_back(status);
        assert!(
            matches!(block_on(delivery::handle(&c, &msg)), Outcome::Requeued { .. }),
            "{status}"
        );
    }
    ports.post.down.set(true);
    assert!(
        matches!(block_on(delivery::handle(&c, &msg)), Outcome::Requeued { .. }),
        "network error"
    );
}

#[test]
fn when_the_retry_cannot_be_queued_the_queue_retries_the_message_itself() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let ports = Ports::new();
    ports.post.down.set(true);
    ports.queue.down.set(true);
    let c = ports.consumer(&env);
    let msg = first_message(&rule, &event("account_locked", None, json!({})));
    assert_eq!(
        block_on(delivery::handle(&c, &msg)),
        Outcome::RetryInPlace { delay: 10 }
    );
}

#[test]
fn a_deleted_or_disabled_rule_sends_nothing() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let ports = Ports::new();
    let c = ports.consumer(&env);
    let msg = first_message(&rule, &event("account_locked", None, json!({})));
    env.db.exec("UPDATE notification_rules SET enabled = 0");
    assert!(matches!(block_on(delivery::handle(&c, &msg)), Outcome::Skipped(_)));
    env.db.exec("DELETE FROM notification_rules");
    assert!(matches!(block_on(delivery::handle(&c, &msg)), Outcome::Skipped(_)));
    assert!(ports.post.posts.borrow().is_empty());
}

#[test]
fn the_rule_as_it_is_at_delivery_decides_what_is_sent() {
    let env = TestEnv::new();
    let ann = env.create_user("ann", "correct horse battery staple");
    env.db
        .exec(&format!("UPDATE users SET groups = '[\"staff\"]' WHERE id = '{ann}'"));
    let made = webhook_rule(
        &env,
        json!({
            "name": "Staff lockouts",
            "match": {"kinds": ["account_locked"], "groups": ["staff"]},
            "transport": {"type": "webhook", "url": "https://hooks.example.com/in", "secret": SECRET}
        }),
    );
    let rule = made["id"].as_str().unwrap().to_owned();
    let ports = Ports::new();
    let c = ports.consumer(&env);
    let msg = first_message(&rule, &event("account_locked", Some(&ann), json!({})));
    assert_eq!(block_on(delivery::handle(&c, &msg)), Outcome::Delivered);
    // Out of the group since: the rule no longer matches her events.
    env.db
        .exec(&format!("UPDATE users SET groups = '[]' WHERE id = '{ann}'"));
    assert!(matches!(block_on(delivery::handle(&c, &msg)), Outcome::Skipped(_)));
    // Back in the group, but the rule narrowed to other kinds meanwhile.
    env.db
        .exec(&format!("UPDATE users SET groups = '[\"staff\"]' WHERE id = '{ann}'"));
    assert_eq!(block_on(delivery::handle(&c, &msg)), Outcome::Delivered);
    env.db
        .exec("UPDATE notification_rules SET criteria = '{\"kinds\":[\"login_failed\"],\"groups\":[\"staff\"]}'");
    assert!(matches!(block_on(delivery::handle(&c, &msg)), Outcome::Skipped(_)));
    assert_eq!(
        ports.post.posts.borrow().len(),
        2,
        "only the two deliveries that matched"
    );
}

#[test]
fn a_secret_sealed_for_another_rule_does_not_open_and_the_delivery_is_dead() {
    let env = TestEnv::new();
    let a = locked_rule(&env);
    let b = locked_rule(&env);
    env.db.exec(&format!(
        "UPDATE notification_rules SET secret_sealed = (SELECT secret_sealed FROM notification_rules WHERE id = '{a}') WHERE id = '{b}'"
    ));
    let ports = Ports::new();
    let out = block_on(delivery::handle(
        &ports.consumer(&env),
        &first_message(&b, &event("account_locked", None, json!({}))),
    ));
    assert!(matches!(out, Outcome::Dead { .. }), "{out:?}");
    assert!(ports.post.posts.borrow().is_empty());
}

#[test]
fn the_dead_letter_queue_is_recorded_too() {
    let env = TestEnv::new();
    let ports = Ports::new();
    let msg = first_message("ntf_x", &event("account_locked", None, json!({})));
    let out = block_on(delivery::handle_from_dead_letter_queue(&ports.consumer(&env), &msg));
    assert!(matches!(out, Outcome::Dead { .. }));
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM notification_dead_letters WHERE rule_id = 'ntf_x' AND event_id = 'evt_test1'"),
        1
    );
}

#[test]
fn dead_letters_keep_only_the_newest_thousand() {
    let env = TestEnv::new();
    let ports = Ports::new();
    let c = ports.consumer(&env);
    for i in 0..1005 {
        env.db.exec(&format!(
            "INSERT INTO notification_dead_letters VALUES ('d{i}', 'r', 'e', 'k', 1, 'x', 'm', {i})"
        ));
    }
    block_on(delivery::handle(&c, "junk"));
    assert_eq!(env.db.count("SELECT COUNT(*) FROM notification_dead_letters"), 1000);
    assert_eq!(
        env.db
            .count("SELECT COUNT(*) FROM notification_dead_letters WHERE message = 'junk'"),
        1
    );
}

// ---- default rules ----

fn with_mail(env: &mut TestEnv) {
    env.settings.mail.delivery = Delivery::Api;
    env.settings.mail.from = "no-reply@id.example.com".into();
}

#[test]
fn a_locked_account_is_told_by_mail_by_default() {
    let mut env = TestEnv::new();
    with_mail(&mut env);
    let user = env.create_user("ann", "a long enough password");
    env.db.exec("UPDATE users SET email_verified = 1");
    let ports = Ports::new();
    let e = event("account_locked", Some(&user), json!({}));
    let msg = first_message("default:account_locked", &e);
    assert_eq!(
        block_on(delivery::handle(&ports.consumer(&env), &msg)),
        Outcome::Delivered
    );
    let mail = ports.mailer.last_to("ann@example.com").expect("mail to the user");
    assert_eq!(mail.kind, MailKind::Notification);
    // An address the user never verified is not told.
    let bob = env.create_user("bob", "a long enough password");
    let e = event("account_locked", Some(&bob), json!({}));
    let msg = first_message("default:account_locked", &e);
    block_on(delivery::handle(&ports.consumer(&env), &msg));
    assert!(ports.mailer.last_to("bob@example.com").is_none());
    assert!(
        mail.subject.starts_with("Your account on ") && mail.subject.ends_with(" was locked"),
        "{}",
        mail.subject
    );
    assert!(mail.text.contains("203.0.113.7"));
    // An event without details has no "Detail" line; one with details has.
    assert!(!mail.text.contains("Detail"), "{}", mail.text);
    let ports = Ports::new();
    let e = event("account_locked", Some(&user), json!({"attempts": 5}));
    block_on(delivery::handle(
        &ports.consumer(&env),
        &first_message("default:account_locked", &e),
    ));
    let mail = ports.mailer.last_to("ann@example.com").expect("mail to the user");
    assert!(
        mail.text.contains("Detail") && mail.text.contains("attempts"),
        "{}",
        mail.text
    );
}

#[test]
fn defaults_are_off_without_mail_and_the_admin_is_told_only_when_named() {
    let mut env = TestEnv::new();
    let rules = |env: &TestEnv| {
        let r = env
            .admin(Method::Get, "/admin/api/notification-rules", None)
            .json_body();
        r["defaults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(rules(&env).is_empty(), "an issuer and no mailer: nothing");
    with_mail(&mut env);
    assert_eq!(rules(&env), ["default:account_locked", "default:new_country"]);
    env.settings.notify.admin_email = Some("sec@example.com".into());
    assert_eq!(rules(&env).len(), 4);
    // A passkey counter regression goes to the administrator.
    let ports = Ports::new();
    let msg = first_message(
        "default:passkey_counter_regressed",
        &event("passkey_counter_regressed", None, json!({})),
    );
    assert_eq!(
        block_on(delivery::handle(&ports.consumer(&env), &msg)),
        Outcome::Delivered
    );
    assert!(ports
        .mailer
        .last_to("sec@example.com")
        .unwrap()
        .subject
        .contains("cloned"));
    // A default rule turned off since the message was queued sends nothing.
    env.settings.notify.admin_email = None;
    let ports = Ports::new();
    assert!(matches!(
        block_on(delivery::handle(&ports.consumer(&env), &msg)),
        Outcome::Skipped(_)
    ));
    // Default rules are configuration, not API data.
    let r = env.admin(
        Method::Put,
        "/admin/api/notification-rules/default:account_locked",
        Some(json!({"name": "x", "transport": {"type": "email", "to": ["user"]}})),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_sign_in_from_a_country_never_seen_for_the_user_is_told_and_a_known_one_is_not() {
    let mut env = TestEnv::new();
    with_mail(&mut env);
    let user = env.create_user("ann", "a long enough password");
    env.db.exec("UPDATE users SET email_verified = 1");
    let sign_in = |id: &str, country: &str, at: i64| {
        env.db.exec(&format!(
            "INSERT INTO events (id, kind, user_id, detail, created_at) VALUES ('{id}', 'login_succeeded', '{user}', '{{\"country\":\"{country}\"}}', {at})"
        ));
        Recorded {
            id: id.into(),
            kind: "login_succeeded".into(),
            user_id: Some(user.clone()),
            client_id: None,
            ip: None,
            detail: json!({ "country": country }),
            created_at: at,
        }
    };
    let deliver = |e: &Recorded| {
        let ports = Ports::new();
        let out = block_on(delivery::handle(
            &ports.consumer(&env),
            &first_message("default:new_country", e),
        ));
        (out, ports.mailer.last_to("ann@example.com"))
    };
    let first = sign_in("evt_a", "FR", T0);
    assert!(
        matches!(deliver(&first).0, Outcome::Skipped(_)),
        "the first sign-in has nothing to compare with"
    );
    let again = sign_in("evt_b", "FR", T0 + 10);
    assert!(matches!(deliver(&again).0, Outcome::Skipped(_)));
    let new = sign_in("evt_c", "DE", T0 + 20);
    let (out, mail) = deliver(&new);
    assert_eq!(out, Outcome::Delivered);
    let mail = mail.unwrap();
    assert!(mail.text.contains("DE"));
    assert!(
        mail.subject.starts_with("New sign-in to your account on "),
        "{}",
        mail.subject
    );
    // Once seen, DE is known.
    let back = sign_in("evt_d", "DE", T0 + 30);
    assert!(matches!(deliver(&back).0, Outcome::Skipped(_)));
}

#[test]
fn notification_mail_to_one_address_is_bounded_per_hour() {
    let mut env = TestEnv::new();
    with_mail(&mut env);
    let user = env.create_user("ann", "a long enough password");
    env.db.exec("UPDATE users SET email_verified = 1");
    let ports = Ports::new();
    let c = ports.consumer(&env);
    let msg = first_message(
        "default:account_locked",
        &event("account_locked", Some(&user), json!({})),
    );
    for _ in 0..delivery::MAILS_PER_ADDRESS_HOUR {
        assert_eq!(block_on(delivery::handle(&c, &msg)), Outcome::Delivered);
    }
    assert!(matches!(block_on(delivery::handle(&c, &msg)), Outcome::Skipped(_)));
    assert_eq!(ports.mailer.mails().len(), delivery::MAILS_PER_ADDRESS_HOUR as usize);
    assert_eq!(
        env.db.count("SELECT COUNT(*) FROM events WHERE kind = 'mail_limited' AND json_extract(detail, '$.mail') = 'notification'"),
        1
    );
}

#[test]
fn a_rules_expression_narrows_what_it_matches_and_is_locked_with_the_policies() {
    let mut env = TestEnv::new();
    let user = env.create_user("ann", "a long enough password");
    env.db
        .exec(&format!("UPDATE users SET groups = '[\"staff\"]' WHERE id = '{user}'"));
    let bad = env.admin(
        Method::Post,
        "/admin/api/notification-rules",
        Some(json!({"name": "x", "match": {"expression": "secret == 1"},
                    "transport": {"type": "webhook", "url": "https://h.example"}})),
    );
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("unknown name `secret`"));
    let v = webhook_rule(
        &env,
        json!({"name": "Staff locked by reason", "match": {"kinds": ["account_locked", "login_failed"],
               "expression": "'staff' in user.groups && event.kind == 'account_locked'"},
               "transport": {"type": "webhook", "url": "https://h.example"}}),
    );
    let id = v["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/api/notification-rules/{id}/test");
    let ask = |e: serde_json::Value| {
        env.admin(Method::Post, &path, Some(json!({ "event": e }))).json_body()["matches"].clone()
    };
    assert_eq!(ask(json!({"kind": "account_locked", "user_id": user})), true);
    assert_eq!(ask(json!({"kind": "login_failed", "user_id": user})), false);
    assert_eq!(ask(json!({"kind": "account_locked"})), false, "no user, no staff");

    // Locked: a rule's expression is not set or changed through the API; the rest is.
    env.settings.lock_expressions = true;
    let body = |expression: &str| {
        json!({"name": "Staff locked by reason", "match": {"kinds": ["account_locked"], "expression": expression},
               "transport": {"type": "webhook", "url": "https://h.example"}})
    };
    let keep = env.admin(
        Method::Put,
        &format!("/admin/api/notification-rules/{id}"),
        Some(body("'staff' in user.groups && event.kind == 'account_locked'")),
    );
    assert_eq!(keep.status, 200, "{}", String::from_utf8_lossy(&keep.body));
    let change = env.admin(
        Method::Put,
        &format!("/admin/api/notification-rules/{id}"),
        Some(body("true")),
    );
    assert_eq!(change.status, 403);
    let new = env.admin(Method::Post, "/admin/api/notification-rules", Some(body("true")));
    assert_eq!(new.status, 403);
}

#[test]
fn a_rule_turned_into_a_webhook_shows_the_secret_it_was_given_once() {
    let env = TestEnv::new();
    let r = env.admin(
        Method::Post,
        "/admin/api/notification-rules",
        Some(json!({"name": "Mail", "match": {"kinds": ["account_locked"]}, "transport": {"type": "email", "to": ["user"]}})),
    );
    assert_eq!(r.status, 201);
    let id = r.json_body()["id"].as_str().unwrap().to_owned();
    let hook = json!({"name": "Hook", "match": {"kinds": ["account_locked"]},
                      "transport": {"type": "webhook", "url": "https://h.example/in"}});
    let r = env.admin(
        Method::Put,
        &format!("/admin/api/notification-rules/{id}"),
        Some(hook.clone()),
    );
    assert_eq!(r.status, 200);
    let secret = r.json_body()["transport"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    // Replaced again without one: the secret is kept and not shown.
    let r = env.admin(Method::Put, &format!("/admin/api/notification-rules/{id}"), Some(hook));
    assert_eq!(r.status, 200);
    assert_ne!(r.json_body()["transport"]["secret"].as_str(), Some(secret.as_str()));
}

#[test]
fn each_default_rule_matches_its_own_kinds_only() {
    use gatehouse_core::events::defaults;
    use gatehouse_core::events::matcher::matches;
    let mut env = TestEnv::new();
    with_mail(&mut env);
    env.settings.notify.admin_email = Some("sec@example.com".into());
    let rules = defaults::rules(&env.settings);
    assert_eq!(rules.len(), 4);
    for (id, kind) in [
        ("default:account_locked", "account_locked"),
        ("default:new_country", "login_succeeded"),
        ("default:passkey_counter_regressed", "passkey_counter_regressed"),
        ("default:admin_changes", "admin_user_created"),
    ] {
        let rule = rules.iter().find(|r| r.id == id).unwrap();
        assert!(
            matches(&rule.criteria, &event(kind, Some("usr_1"), json!({})), &[]),
            "{id}"
        );
        for other in ["login_failed", "token_issued", "account_unlocked"] {
            assert!(
                !matches(&rule.criteria, &event(other, Some("usr_1"), json!({})), &[]),
                "{id} matched {other}"
            );
        }
    }
}

#[test]
fn the_capturing_view_reads_through_and_keeps_at_most_32_events_a_request() {
    let env = TestEnv::new();
    let capturing = Capturing::new(&env.db);
    let rows = block_on(capturing.query("SELECT 7 AS n UNION ALL SELECT 8", &[])).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get("n").and_then(|v| v.as_i64()), Some(7));
    for n in 0..40 {
        let e = events::Event {
            kind: EventKind::LoginFailed,
            user_id: None,
            client_id: None,
            ip: None,
            location: None,
            detail: json!({ "n": n }),
        };
        block_on(events::record(&capturing, &env.rng, T0, e)).unwrap();
    }
    let seen = capturing.take();
    assert_eq!(seen.len(), gatehouse_core::events::capture::MAX_PER_REQUEST);
    assert_eq!(seen.len(), 32);
    assert_eq!(seen[31].detail, json!({"n": 31}), "the first 32, in order");
    assert_eq!(env.db.count("SELECT COUNT(*) FROM events"), 40, "all are recorded");
}

#[test]
fn a_dead_letter_counts_every_attempt_made() {
    let env = TestEnv::new();
    let rule = locked_rule(&env);
    let ports = Ports::new();
    let c = ports.consumer(&env);
    let third = Message {
        attempt: 2,
        ..Message::first(&rule, &event("account_locked", None, json!({})))
    }
    .to_json()
    .unwrap();
    // A 404 will not change by itself: dead at once, after the three attempts made.
    ports.post.answers.borrow_mut().push_back(404);
    assert!(matches!(block_on(delivery::handle(&c, &third)), Outcome::Dead { .. }));
    assert_eq!(
        env.db.count(&format!(
            "SELECT attempts FROM notification_dead_letters WHERE rule_id = '{rule}'"
        )),
        3
    );
    // Through the dead-letter queue: the attempts the message carried, and the one that failed.
    env.db.exec("DELETE FROM notification_dead_letters");
    assert!(matches!(
        block_on(delivery::handle_from_dead_letter_queue(&c, &third)),
        Outcome::Dead { .. }
    ));
    assert_eq!(env.db.count("SELECT attempts FROM notification_dead_letters"), 3);
}

#[test]
fn a_queue_message_keeps_its_detail_up_to_16_kb() {
    let with = |bytes: usize| {
        Message::first(
            "ntf_x",
            &event("login_failed", None, json!({ "pad": "x".repeat(bytes) })),
        )
        .to_json()
        .unwrap()
    };
    let kept = with(12 * 1024);
    assert!(
        kept.len() <= delivery::MAX_MESSAGE_BYTES && kept.contains("xxxx"),
        "{}",
        kept.len()
    );
    assert_eq!(delivery::MAX_MESSAGE_BYTES, 16 * 1024);
    let cut = with(20 * 1024);
    assert!(cut.contains("\"truncated\":true") && !cut.contains("xxxx"));
}

#[test]
fn a_rules_criteria_are_bounded_at_exactly_their_limits() {
    use gatehouse_core::events::matcher::{Criteria, MAX_ENTRIES, MAX_ENTRY_BYTES};
    let with_groups = |groups: Vec<String>| Criteria {
        groups,
        ..Criteria::default()
    };
    assert_eq!(with_groups(vec!["g".into(); MAX_ENTRIES]).validate(), Ok(()));
    assert!(with_groups(vec!["g".into(); MAX_ENTRIES + 1])
        .validate()
        .is_err_and(|e| e.contains("more than 50 entries")));
    assert_eq!(with_groups(vec!["g".repeat(MAX_ENTRY_BYTES)]).validate(), Ok(()));
    assert!(with_groups(vec!["g".repeat(MAX_ENTRY_BYTES + 1)])
        .validate()
        .is_err_and(|e| e.contains("over-200-byte")));
}

#[test]
fn a_rules_name_url_and_recipients_are_bounded_at_exactly_their_limits() {
    use gatehouse_core::events::rules::{MAX_NAME_BYTES, MAX_RECIPIENTS, MAX_URL_BYTES};
    let env = TestEnv::new();
    let post = |body: serde_json::Value| {
        let r = env.admin(Method::Post, "/admin/api/notification-rules", Some(body));
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    let mail = |name: String, to: Vec<String>| json!({"name": name, "transport": {"type": "email", "to": to}});
    let user = || vec!["user".to_owned()];
    assert_eq!(post(mail("n".repeat(MAX_NAME_BYTES), user())).0, 201);
    let (s, b) = post(mail("n".repeat(MAX_NAME_BYTES + 1), user()));
    assert!(s == 400 && b.contains("name must be 1 to 100 bytes"), "{b}");
    let many = |n: usize| (0..n).map(|i| format!("a{i}@example.com")).collect::<Vec<_>>();
    assert_eq!(post(mail("ten".into(), many(MAX_RECIPIENTS))).0, 201);
    let (s, b) = post(mail("eleven".into(), many(MAX_RECIPIENTS + 1)));
    assert!(s == 400 && b.contains("1 to 10 recipients"), "{b}");
    let hook = |url: String| json!({"name": "hook", "transport": {"type": "webhook", "url": url}});
    let url = |len: usize| {
        let base = "https://hooks.example.com/";
        format!("{base}{}", "p".repeat(len - base.len()))
    };
    assert_eq!(post(hook(url(MAX_URL_BYTES))).0, 201);
    let (s, b) = post(hook(url(MAX_URL_BYTES + 1)));
    assert!(s == 400 && b.contains("at most 2048 bytes"), "{b}");
}

#[test]
fn dead_letters_keep_messages_up_to_16_kb_cut_on_a_character_boundary() {
    use gatehouse_core::store::dead_letters::{cut, MAX_MESSAGE};
    assert_eq!(cut("aaé", 3), "aa");
    assert_eq!(cut("aé", 2), "a");
    assert_eq!(cut("aé", 3), "aé");
    assert_eq!(cut("abc", 10), "abc");
    assert_eq!(MAX_MESSAGE, 16 * 1024);
    let env = TestEnv::new();
    let ports = Ports::new();
    let c = ports.consumer(&env);
    for (bytes, stored) in [(12 * 1024, 12 * 1024), (20 * 1024, 16 * 1024)] {
        env.db.exec("DELETE FROM notification_dead_letters");
        let junk = "j".repeat(bytes);
        assert!(matches!(block_on(delivery::handle(&c, &junk)), Outcome::Dead { .. }));
        assert_eq!(
            env.db.count("SELECT length(message) FROM notification_dead_letters"),
            stored as i64
        );
    }
}
