//! One simulated user: signs in once, then loops over a weighted mix of actions with think
//! time, and checks with an oracle that every read reflects the writes it saw succeed.
//!
//! **Without coordinated omission.** A user's next action is scheduled at *previous scheduled
//! time + think time* (exponential, mean [`Shared::think`]), whatever the server did; the first
//! request of an action is timed from that scheduled instant (wrk2's approach), so a server
//! that stalls is charged for the whole stall. The requests that follow in the same action
//! (the read after a write) are timed from when they were sent: they depend on the first.
//!
//! **The oracle.** Each user is the only writer of its data and runs one action at a time, so
//! it knows exactly what its day must hold: the meals of the last day it read, plus the meals it
//! logged (201), minus those it deleted (204), and its daily goal after a PATCH (200). A read of
//! `GET /meals/daily`, `GET /users/me` or `GET /stats` that contradicts this, on whichever
//! replica answers, is a violation, logged with the request ids of the writes and the read. A
//! write whose outcome is unknown (no response, 5xx) may or may not have happened: the user's
//! checks pause for [`UNCERTAIN_PAUSE`] and its model is rebuilt from the next reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

use crate::http::{Call, Client, Reply};
use crate::record::Recorder;

/// How long checks pause after a write with an unknown outcome: longer than the local cache
/// tier's 5 s TTL, so that a copy from before such a write has aged out.
pub(crate) const UNCERTAIN_PAUSE: Duration = Duration::from_secs(10);

/// The seeded users' password (`calories_app::seed::SEED_PASSWORD`).
pub(crate) const SEED_PASSWORD: &str = "seed-password";

/// Words of the food search.
const FOODS: &[&str] = &[
    "apple", "egg", "chicken", "rice", "salad", "bread", "yogurt", "banana", "oat", "cheese",
    "beef", "pasta", "milk", "tofu", "soup",
];

/// The smallest PNG: the photo of an upload.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// When a request may be sent again after its answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// As its method says: GET and DELETE may, POST and PATCH may not.
    ByMethod,
    /// A meal write: sent with its request id as `Idempotency-Key`, so it may.
    WithKey,
    /// `PATCH /users/me`: it sets values (no deltas), so sending it twice does what once does.
    SetsValues,
}

/// What all users share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The client of nginx.
    pub(crate) client: Client,
    /// Where figures go.
    pub(crate) recorder: Arc<Recorder>,
    /// Set when the users' loops are to end...
    pub(crate) stop: AtomicBool,
    /// ...and notified then.
    pub(crate) stopped: Notify,
    /// The mean think time between actions.
    pub(crate) think: Duration,
    /// Logins at once (each is an Argon2 verification on a replica).
    pub(crate) logins: Semaphore,
}

/// The actions of the mix and their weights (out of 100).
const MIX: &[(Action, u32)] = &[
    (Action::OpenDay, 36),
    (Action::LogMeal, 12),
    (Action::WeekStats, 10),
    (Action::MonthStats, 5),
    (Action::ViewProfile, 12),
    (Action::EditGoal, 3),
    (Action::SearchFood, 18),
    (Action::UploadPhoto, 1),
    (Action::DeleteMeal, 3),
];

#[derive(Debug, Clone, Copy)]
enum Action {
    OpenDay,
    LogMeal,
    WeekStats,
    MonthStats,
    ViewProfile,
    EditGoal,
    SearchFood,
    UploadPhoto,
    DeleteMeal,
}

/// The day the user last read, with the meals it must hold: id to kcal.
#[derive(Debug, Clone)]
struct Day {
    date: String,
    meals: BTreeMap<i64, i64>,
}

/// One simulated user.
#[derive(Debug)]
pub(crate) struct User {
    /// Its number among the seeded users (from 1).
    pub(crate) n: u64,
    /// Its access token once signed in.
    pub(crate) token: Option<String>,
    seq: u64,
    rng: fastrand::Rng,
    day: Option<Day>,
    goal: Option<i64>,
    /// Request ids of the writes since the last checked read.
    writes: Vec<String>,
    uncertain_until: Option<Instant>,
}

impl User {
    /// Seeded user `n`.
    #[must_use]
    pub(crate) fn new(n: u64) -> Self {
        Self {
            n,
            token: None,
            seq: 0,
            rng: fastrand::Rng::with_seed(n),
            day: None,
            goal: None,
            writes: Vec::new(),
            uncertain_until: None,
        }
    }

    fn request_id(&mut self) -> String {
        self.seq += 1;
        format!("cap-u{}-{}", self.n, self.seq)
    }

    async fn send(
        &mut self,
        shared: &Shared,
        route: &'static str,
        intended: Instant,
        method: &'static str,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> (Reply, String) {
        self.send_as(
            shared,
            route,
            intended,
            (method, Repeat::ByMethod),
            path,
            body,
        )
        .await
    }

    /// [`User::send`], saying when the request is safe to send again (see
    /// [`Client::send`]): a meal write carries its request id as its `Idempotency-Key`.
    async fn send_as(
        &mut self,
        shared: &Shared,
        route: &'static str,
        intended: Instant,
        (method, repeat): (&'static str, Repeat),
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> (Reply, String) {
        let mut request_id = self.request_id();
        shared.recorder.sending();
        let reply = shared
            .client
            .send(Call {
                method,
                path,
                token: self.token.as_deref(),
                body,
                request_id: &request_id,
                idempotency_key: (repeat == Repeat::WithKey).then_some(request_id.as_str()),
                repeatable: repeat == Repeat::SetsValues,
            })
            .await;
        // A DELETE sent again and answered 404: the first copy deleted it (its answer was
        // lost), which is the outcome asked for.
        let reply = if method == "DELETE" && reply.retried && reply.status == 404 {
            Reply {
                status: 204,
                ..reply
            }
        } else {
            reply
        };
        shared.recorder.record(route, intended, reply.status, true);
        if reply.retried {
            shared.recorder.resent();
        }
        // The id as the violation log shows it: with the replica that answered.
        request_id = format!(
            "{request_id}@{}",
            reply.upstream.as_deref().unwrap_or("none")
        );
        if reply.status == 503 && reply.retry_after.is_none() {
            shared.recorder.no_retry_after();
        }
        if reply.status >= 400 {
            let code = reply.json();
            let code = code
                .as_ref()
                .and_then(|v| v["error"]["code"].as_str())
                .unwrap_or("(no JSON error)");
            shared.recorder.error_code(reply.status, code);
        }
        (reply, request_id)
    }

    /// Signs in (retrying on 503 and 429 after `Retry-After`), then reads its day and profile
    /// to know where it starts. False when it could not sign in before `deadline`.
    pub(crate) async fn login(&mut self, shared: &Shared, deadline: Instant) -> bool {
        let body = Bytes::from(
            json!({"email": format!("user{:08}@seed.example", self.n), "password": SEED_PASSWORD})
                .to_string(),
        );
        while Instant::now() < deadline && !shared.stop.load(Ordering::Relaxed) {
            let reply = {
                let Ok(_permit) = shared.logins.acquire().await else {
                    return false;
                };
                let intended = Instant::now();
                self.send(
                    shared,
                    "POST /auth/login",
                    intended,
                    "POST",
                    "/auth/login",
                    Some(("application/json", body.clone())),
                )
                .await
                .0
            };
            if reply.status == 200 {
                self.token = reply
                    .json()
                    .and_then(|v| v["access_token"].as_str().map(str::to_owned));
                if self.token.is_some() {
                    shared.recorder.login();
                    let now = Instant::now();
                    self.open_day(shared, now).await;
                    let now = Instant::now();
                    self.view_profile(shared, now).await;
                    return true;
                }
            }
            let wait = reply.retry_after.unwrap_or(1).clamp(1, 10);
            tokio::time::sleep(Duration::from_millis(wait * 1000 + self.rng.u64(0..500))).await;
        }
        false
    }

    /// The user's loop: an action at each scheduled time until `shared.stop`.
    pub(crate) async fn run(&mut self, shared: &Shared) {
        let mut next = Instant::now() + self.think(shared);
        loop {
            // Woken by the end of the user phases too, rather than waiting out a long think.
            let stopped = shared.stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = &mut stopped => return,
            }
            let intended = next;
            self.act(shared, intended).await;
            next += self.think(shared);
        }
    }

    fn think(&mut self, shared: &Shared) -> Duration {
        // Exponential: open arrivals of the whole population at users / mean per second.
        let u = 1.0 - self.rng.f64();
        shared.think.mul_f64(-u.ln()).min(shared.think * 20)
    }

    fn pick(&mut self) -> Action {
        let mut r = self.rng.u32(0..100);
        for (action, weight) in MIX {
            if r < *weight {
                return *action;
            }
            r -= weight;
        }
        Action::OpenDay
    }

    async fn act(&mut self, shared: &Shared, intended: Instant) {
        match self.pick() {
            Action::OpenDay => self.open_day(shared, intended).await,
            Action::LogMeal => {
                let calories = self.rng.i64(50..900);
                let body = json!({"name": "capacity run meal", "calories": calories});
                let (reply, id) = self
                    .send_as(
                        shared,
                        "POST /meals",
                        intended,
                        ("POST", Repeat::WithKey),
                        "/meals",
                        Some(("application/json", Bytes::from(body.to_string()))),
                    )
                    .await;
                self.after_meal_write(shared, &reply, id, calories);
                self.open_day(shared, Instant::now()).await;
            }
            Action::WeekStats => self.stats(shared, intended, 7).await,
            Action::MonthStats => self.stats(shared, intended, 30).await,
            Action::ViewProfile => self.view_profile(shared, intended).await,
            Action::EditGoal => {
                let goal = self.rng.i64(15..=35) * 100;
                let body = json!({"daily_goal": goal});
                let (reply, id) = self
                    .send_as(
                        shared,
                        "PATCH /users/me",
                        intended,
                        ("PATCH", Repeat::SetsValues),
                        "/users/me",
                        Some(("application/json", Bytes::from(body.to_string()))),
                    )
                    .await;
                self.writes.push(id);
                if reply.status == 200 {
                    self.goal = Some(goal);
                } else {
                    self.goal = None;
                    self.uncertain(shared);
                }
                self.view_profile(shared, Instant::now()).await;
                self.open_day(shared, Instant::now()).await;
            }
            Action::SearchFood => {
                let word = FOODS[self.rng.usize(0..FOODS.len())];
                let path = format!("/foods?q={word}");
                self.send(shared, "GET /foods", intended, "GET", &path, None)
                    .await;
            }
            Action::UploadPhoto => {
                let calories = self.rng.i64(50..900);
                let (content_type, body) = multipart(calories);
                let (reply, id) = self
                    .send_as(
                        shared,
                        "POST /meals/upload",
                        intended,
                        ("POST", Repeat::WithKey),
                        "/meals/upload",
                        Some((content_type, body)),
                    )
                    .await;
                self.after_meal_write(shared, &reply, id, calories);
                self.open_day(shared, Instant::now()).await;
            }
            Action::DeleteMeal => {
                let victim = self.day.as_ref().and_then(|d| {
                    let ids: Vec<i64> = d.meals.keys().copied().collect();
                    (!ids.is_empty()).then(|| ids[self.rng.usize(0..ids.len())])
                });
                let Some(meal) = victim else {
                    return self.open_day(shared, intended).await;
                };
                let path = format!("/meals/{meal}");
                let (reply, id) = self
                    .send(
                        shared,
                        "DELETE /meals/{id}",
                        intended,
                        "DELETE",
                        &path,
                        None,
                    )
                    .await;
                self.writes.push(id);
                // 404: gone either way (nginx may have retried a DELETE that had succeeded).
                if reply.status == 204 || reply.status == 404 {
                    if let Some(day) = self.day.as_mut() {
                        day.meals.remove(&meal);
                    }
                } else {
                    self.uncertain(shared);
                }
                self.open_day(shared, Instant::now()).await;
            }
        }
    }

    fn after_meal_write(&mut self, shared: &Shared, reply: &Reply, id: String, calories: i64) {
        self.writes.push(id);
        let created = (reply.status == 201)
            .then(|| reply.json())
            .flatten()
            .and_then(|v| v["id"].as_i64());
        match (created, self.day.as_mut()) {
            (Some(meal), Some(day)) => {
                // Logged now, so on the day last read unless the day has turned since: then the
                // next read shows another date and the model restarts from it.
                day.meals.insert(meal, calories);
            }
            (Some(_), None) => {}
            (None, _) => self.uncertain(shared),
        }
    }

    fn uncertain(&mut self, shared: &Shared) {
        shared.recorder.unverified_write();
        self.uncertain_until = Some(Instant::now() + UNCERTAIN_PAUSE);
        self.day = None;
    }

    fn checking(&mut self) -> bool {
        match self.uncertain_until {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                self.uncertain_until = None;
                true
            }
            None => true,
        }
    }

    fn violation(&mut self, shared: &Shared, read: &str, what: &str) {
        let mut ids = self.writes.clone();
        ids.push(read.to_owned());
        shared.recorder.violation(self.n, what, &ids);
    }

    async fn open_day(&mut self, shared: &Shared, intended: Instant) {
        let (reply, read) = self
            .send(
                shared,
                "GET /meals/daily",
                intended,
                "GET",
                "/meals/daily",
                None,
            )
            .await;
        let Some(body) = reply.ok().then(|| reply.json()).flatten() else {
            return;
        };
        let Some(date) = body["date"].as_str().map(str::to_owned) else {
            return self.violation(shared, &read, "GET /meals/daily answered without a date");
        };
        let meals: BTreeMap<i64, i64> = body["meals"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|m| Some((m["id"].as_i64()?, m["calories"].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let total = body["totals"]["calories"].as_i64();
        let goal = body["daily_goal"].as_i64();
        if self.checking() {
            shared.recorder.checked();
            let mut problems = Vec::new();
            if total != Some(meals.values().sum()) {
                problems.push(format!(
                    "total {total:?} is not the sum of the listed meals"
                ));
            }
            if let (Some(want), Some(got)) = (self.goal, goal)
                && want != got
            {
                problems.push(format!("daily_goal {got}, but the user set {want}"));
            }
            if let Some(day) = self.day.as_ref().filter(|d| d.date == date) {
                let missing: Vec<&i64> = day
                    .meals
                    .keys()
                    .filter(|id| !meals.contains_key(id))
                    .collect();
                let extra: Vec<&i64> = meals
                    .keys()
                    .filter(|id| !day.meals.contains_key(id))
                    .collect();
                if !missing.is_empty() || !extra.is_empty() {
                    problems.push(format!(
                        "day {date}: meals {missing:?} missing, {extra:?} unexpected"
                    ));
                }
                let want: i64 = day.meals.values().sum();
                if total != Some(want) {
                    problems.push(format!("day {date}: total {total:?}, expected {want}"));
                }
            }
            if !problems.is_empty() {
                // The user's model stays the truth: a stale read must not become the
                // expectation that the next, fresh read would then contradict.
                self.violation(shared, &read, &problems.join("; "));
                return;
            }
            self.writes.clear();
        }
        if self.goal.is_none() {
            self.goal = goal;
        }
        self.day = Some(Day { date, meals });
    }

    async fn view_profile(&mut self, shared: &Shared, intended: Instant) {
        let (reply, read) = self
            .send(shared, "GET /users/me", intended, "GET", "/users/me", None)
            .await;
        let Some(goal) = reply
            .ok()
            .then(|| reply.json())
            .flatten()
            .and_then(|v| v["daily_goal"].as_i64())
        else {
            return;
        };
        let checking = self.checking();
        match self.goal {
            Some(want) if checking => {
                shared.recorder.checked();
                if want != goal {
                    self.violation(
                        shared,
                        &read,
                        &format!("GET /users/me daily_goal {goal}, but the user set {want}"),
                    );
                }
            }
            _ => self.goal = Some(goal),
        }
    }

    async fn stats(&mut self, shared: &Shared, intended: Instant, days: u32) {
        let (route, path) = if days == 7 {
            ("GET /stats?days=7", "/stats?days=7")
        } else {
            ("GET /stats?days=30", "/stats?days=30")
        };
        let (reply, read) = self.send(shared, route, intended, "GET", path, None).await;
        let Some(body) = reply.ok().then(|| reply.json()).flatten() else {
            return;
        };
        if !self.checking() {
            return;
        }
        let mut problems = Vec::new();
        if let (Some(want), Some(got)) = (self.goal, body["daily_goal"].as_i64())
            && want != got
        {
            problems.push(format!("stats daily_goal {got}, but the user set {want}"));
        }
        // Today's row of the window must match the day the user knows.
        let today = body["per_day"]
            .as_array()
            .and_then(|rows| rows.last())
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(day) = self
            .day
            .as_ref()
            .filter(|d| today["date"].as_str() == Some(d.date.as_str()))
        {
            let want: i64 = day.meals.values().sum();
            let got = today["totals"]["calories"].as_i64();
            let count = today["meals"].as_u64();
            if got != Some(want) || count != Some(day.meals.len() as u64) {
                problems.push(format!(
                    "stats for {}: {got:?} kcal in {count:?} meals, expected {want} in {}",
                    day.date,
                    day.meals.len()
                ));
            }
        }
        shared.recorder.checked();
        if problems.is_empty() {
            self.writes.clear();
        } else {
            self.violation(shared, &read, &problems.join("; "));
        }
    }
}

/// A `multipart/form-data` body for `POST /meals/upload`: the PNG and the meal's fields.
fn multipart(calories: i64) -> (&'static str, Bytes) {
    const BOUNDARY: &str = "capacity-run-boundary-7f3a";
    let mut body = Vec::with_capacity(512);
    for (name, value) in [
        ("name", "capacity run photo meal".to_owned()),
        ("calories", calories.to_string()),
    ] {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"photo\"; filename=\"meal.png\"\r\ncontent-type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(PNG);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (
        "multipart/form-data; boundary=capacity-run-boundary-7f3a",
        Bytes::from(body),
    )
}
