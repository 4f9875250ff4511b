//! The training dashboard: the live run (charts drawn from the training
//! websocket), the form that starts a run, the learning-rate sweep, and
//! the list of runs.

use flukeid_shared::api::{JobStarted, LrFindStatus, RunState, REFERENCE_SCHEDULE_JSON};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;
use web_sys::WebSocket;

use super::charts;
use super::form::{LrSweepForm, RunForm, BACKBONES};
use super::plot::ChartSpec;
use super::runs::RunsList;
use super::series::{parse_feed, thin, Applied, EpochMetric, StepMetric, TrainSeries};
use crate::admin::{use_admin, Admin, TokenGate};
use crate::api::http::{get_json, send_json};
use crate::api::socket::{Backoff, Socket};
use crate::format;

/// Most points drawn per line; longer series are averaged down.
const MAX_POINTS: usize = 600;

/// How often the learning-rate sweep is asked for news while it runs.
const LR_POLL_MS: u64 = 1500;

/// The close code the server uses for a refused token.
const POLICY_VIOLATION: u16 = 1008;

/// The training dashboard (behind the admin token).
#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <TokenGate>
            <Dashboard/>
        </TokenGate>
    }
}

#[component]
fn Dashboard() -> impl IntoView {
    let feed = Feed::new(use_admin());
    open_feed(feed);
    on_cleanup(move || feed.socket.set_value(None));
    let form = RwSignal::new(RunForm::default());

    view! {
        <section class="dashboard">
            <h1>"Training"</h1>
            <LiveRun feed=feed/>
            <RunControls form=form/>
            <LrFinder form=form/>
            <RunsList/>
        </section>
    }
}

/// The training websocket and what it has delivered.
#[derive(Clone, Copy)]
struct Feed {
    admin: Admin,
    series: RwSignal<TrainSeries>,
    connection: RwSignal<String>,
    socket: StoredValue<Option<Socket>, LocalStorage>,
    backoff: StoredValue<Backoff>,
}

impl Feed {
    fn new(admin: Admin) -> Self {
        Self {
            admin,
            series: RwSignal::new(TrainSeries::default()),
            connection: RwSignal::new("Connecting…".into()),
            socket: StoredValue::new_local(None),
            backoff: StoredValue::new(Backoff::new(1000, 15_000)),
        }
    }
}

/// Connects the feed; the token goes in the first message rather than the
/// URL, which servers and proxies log.
fn open_feed(feed: Feed) {
    let Some(token) = feed.admin.token() else {
        return;
    };
    let hello = serde_json::json!({ "token": token }).to_string();
    let on_open = move |socket: &WebSocket| {
        let _ = socket.send_with_str(&hello);
        feed.backoff.update_value(Backoff::reset);
        feed.connection.set("Live".into());
    };
    let on_message = move |text: String| match parse_feed(&text) {
        Ok(message) => {
            let mut applied = Applied::Updated;
            feed.series.update(|s| applied = s.apply(message));
            if applied == Applied::Resync {
                reopen_later(feed, 0);
            }
        }
        Err(problem) => feed.connection.set(problem),
    };
    let on_close = move |code: u16, _reason: String| {
        if code == POLICY_VIOLATION {
            feed.admin
                .refused("The training feed did not accept the admin token; enter it again.");
            return;
        }
        let delay = feed
            .backoff
            .try_update_value(|b| b.next_delay_ms())
            .unwrap_or(15_000);
        feed.connection
            .set(format!("Disconnected; trying again in {} s.", delay / 1000));
        reopen_later(feed, delay);
    };
    match Socket::connect("/api/ws/train", on_open, on_message, on_close) {
        Ok(socket) => feed.socket.set_value(Some(socket)),
        Err(problem) => feed.connection.set(problem),
    }
}

/// Reconnects after `delay_ms`, outside the socket's own callbacks, unless
/// the page has gone meanwhile.
fn reopen_later(feed: Feed, delay_ms: u32) {
    let reopen = move || {
        if feed.socket.try_update_value(|s| *s = None).is_some() {
            open_feed(feed);
        }
    };
    set_timeout(
        reopen,
        std::time::Duration::from_millis(u64::from(delay_ms)),
    );
}

#[component]
fn LiveRun(feed: Feed) -> impl IntoView {
    let series = feed.series;
    let heading = move || {
        series.with(|s| {
            let run = s.run_id.clone().unwrap_or_else(|| "No run yet".into());
            let state = s
                .state
                .as_ref()
                .map(|(state, message)| format!("{} — {message}", state_name(*state)));
            (run, state.unwrap_or_default())
        })
    };
    let progress = move || {
        series.with(|s| {
            s.last_step().map(|step| {
                let text = format!(
                    "Step {} of {} · epoch {} · {:.1} images/s · about {} left",
                    step.global_step,
                    step.total_steps,
                    step.epoch + 1,
                    step.images_per_sec,
                    format::duration(step.eta_secs)
                );
                view! {
                    <progress
                        max=step.total_steps.max(1)
                        value=step.global_step
                        aria-label="Training progress"
                    ></progress>
                    <p>{text}</p>
                }
            })
        })
    };
    let step_chart = move |title: &'static str, metric: StepMetric, scientific: bool| {
        Signal::derive(move || {
            let points = series.with(|s| thin(&s.step_points(metric), MAX_POINTS));
            let spec = ChartSpec::new(title, "step", vec![(title, points)]);
            if scientific {
                spec.scientific()
            } else {
                spec
            }
        })
    };
    let epoch_chart = move |title: &'static str, lines: Vec<(&'static str, EpochMetric)>| {
        Signal::derive(move || {
            let lines = lines
                .iter()
                .map(|(name, metric)| (*name, series.with(|s| s.epoch_points(*metric))))
                .collect();
            ChartSpec::new(title, "epoch", lines)
        })
    };

    view! {
        <section class="card live">
            <header>
                <h2>{move || heading().0}</h2>
                <span class="connection" role="status">{move || feed.connection.get()}</span>
            </header>
            <p class="run-state">{move || heading().1}</p>
            {progress}
            <div class="charts">
                <Chart spec=step_chart("Loss per step", StepMetric::Loss, false)/>
                <Chart spec=step_chart("Triplet accuracy per step", StepMetric::Accuracy, false)/>
                <Chart spec=step_chart("Learning rate", StepMetric::Lr, true)/>
                <Chart spec=step_chart("Images per second", StepMetric::ImagesPerSec, false)/>
                <Chart spec=epoch_chart("Loss per epoch", vec![
                    ("train", EpochMetric::TrainLoss),
                    ("validation", EpochMetric::ValLoss),
                ])/>
                <Chart spec=epoch_chart("Accuracy per epoch", vec![
                    ("train", EpochMetric::TrainAccuracy),
                    ("validation", EpochMetric::ValAccuracy),
                ])/>
                <Chart spec=epoch_chart("Validation MAP@5", vec![("MAP@5", EpochMetric::ValMap5)])/>
            </div>
        </section>
    }
}

/// A canvas that redraws whenever its spec changes.
#[component]
pub fn Chart(#[prop(into)] spec: Signal<ChartSpec>) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        let spec = spec.get();
        if let Some(element) = canvas.get() {
            charts::draw(&element, &spec);
        }
    });
    view! {
        <canvas
            class="chart"
            node_ref=canvas
            role="img"
            aria-label=move || spec.with(ChartSpec::summary)
            data-points=move || spec.with(ChartSpec::n_points)
        ></canvas>
    }
}

#[component]
fn RunControls(form: RwSignal<RunForm>) -> impl IntoView {
    let admin = use_admin();
    let message = RwSignal::new(None::<Result<String, String>>);
    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let config = match form.with_untracked(RunForm::to_config) {
            Ok(config) => config,
            Err(problem) => return message.set(Some(Err(problem))),
        };
        message.set(Some(Ok("Starting…".into())));
        spawn_local(async move {
            let started = send_json::<Value, JobStarted>(
                "POST",
                "/api/admin/train",
                &config,
                admin.token().as_deref(),
            )
            .await;
            message.set(Some(admin.check(started).map(|j| j.message)));
        });
    };
    let stop = move |_| {
        spawn_local(async move {
            let stopped = send_json::<Value, JobStarted>(
                "POST",
                "/api/admin/train/stop",
                &Value::Null,
                admin.token().as_deref(),
            )
            .await;
            message.set(Some(admin.check(stopped).map(|j| j.message)));
        });
    };
    let backbones = BACKBONES
        .iter()
        .map(|(name, shown)| {
            let selected = move || form.with(|f| f.backbone == *name);
            view! { <option value=*name selected=selected>{*shown}</option> }
        })
        .collect_view();

    view! {
        <form class="card run-form" on:submit=start>
            <h2>"Start a run"</h2>
            <div class="fields">
                <label for="backbone">"Backbone"</label>
                <select id="backbone" on:change=move |ev| {
                    let value = event_target_value(&ev);
                    form.update(|f| f.backbone = value);
                }>{backbones}</select>
                {text_field(form, "Learning rate", "lr", |f| &f.lr, |f| &mut f.lr)}
                {text_field(form, "Epochs (the schedule's first N)", "n-epochs",
                    |f| &f.n_epochs, |f| &mut f.n_epochs)}
                {text_field(form, "Batch size (triplets)", "batch-size",
                    |f| &f.batch_size, |f| &mut f.batch_size)}
                {text_field(form, "Embedding size", "embedding-size",
                    |f| &f.embedding_size, |f| &mut f.embedding_size)}
                {text_field(form, "Crop width (pixels)", "crop-width",
                    |f| &f.crop_width, |f| &mut f.crop_width)}
                {text_field(form, "Crop height (pixels)", "crop-height",
                    |f| &f.crop_height, |f| &mut f.crop_height)}
                {text_field(form, "Box padding in x (pixels)", "pad-x",
                    |f| &f.pad_x, |f| &mut f.pad_x)}
                {text_field(form, "Box padding in y (pixels)", "pad-y",
                    |f| &f.pad_y, |f| &mut f.pad_y)}
                {text_field(form, "Steps per epoch at most (empty: all)", "max-steps",
                    |f| &f.max_steps_per_epoch, |f| &mut f.max_steps_per_epoch)}
                <label for="pretrained">"Start from ImageNet weights"</label>
                <input
                    id="pretrained"
                    type="checkbox"
                    prop:checked=move || form.with(|f| f.pretrained)
                    on:change=move |ev| {
                        let checked = event_target_checked(&ev);
                        form.update(|f| f.pretrained = checked);
                    }
                />
            </div>
            <ScheduleField form=form/>
            <div class="buttons">
                <button type="submit" class="primary">"Start training"</button>
                <button type="button" on:click=stop>"Stop the running job"</button>
            </div>
            <Outcome message=message/>
        </form>
    }
}

/// The schedule as JSON, folded away: empty for the reference, which the
/// placeholder shows and a button copies in as a start for edits.
#[component]
fn ScheduleField(form: RwSignal<RunForm>) -> impl IntoView {
    let copy_reference = move |_| form.update(|f| f.schedule = REFERENCE_SCHEDULE_JSON.into());
    let use_reference = move |_| form.update(|f| f.schedule.clear());

    view! {
        <details class="schedule">
            <summary>"Schedule (advanced)"</summary>
            <p class="small" id="schedule-help">
                "Empty: the reference schedule, shown greyed. The epochs above keep the "
                "first N epochs of whichever schedule runs; the server checks each phase."
            </p>
            <label for="schedule">"Schedule as JSON"</label>
            <textarea
                id="schedule"
                rows="10"
                spellcheck="false"
                aria-describedby="schedule-help"
                placeholder=REFERENCE_SCHEDULE_JSON
                prop:value=move || form.with(|f| f.schedule.clone())
                on:input=move |ev| {
                    let value = event_target_value(&ev);
                    form.update(|f| f.schedule = value);
                }
            ></textarea>
            <div class="buttons">
                <button type="button" on:click=copy_reference>
                    "Edit a copy of the reference"
                </button>
                <button type="button" on:click=use_reference>"Use the reference"</button>
            </div>
        </details>
    }
}

/// A label and a text input bound to one string field of `form`, which
/// `get` and `get_mut` pick.
pub fn text_field<F>(
    form: RwSignal<F>,
    label: &'static str,
    id: &'static str,
    get: fn(&F) -> &String,
    get_mut: fn(&mut F) -> &mut String,
) -> impl IntoView
where
    F: Send + Sync + 'static,
{
    view! {
        <label for=id>{label}</label>
        <input
            id=id
            inputmode="decimal"
            prop:value=move || form.with(|f| get(f).clone())
            on:input=move |ev| {
                let value = event_target_value(&ev);
                form.update(|f| *get_mut(f) = value);
            }
        />
    }
}

/// A request's outcome under a form: news, or a problem as an alert.
#[component]
pub fn Outcome(message: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    move || {
        message.get().map(|m| match m {
            Ok(news) => view! { <p class="news" role="status">{news}</p> }.into_any(),
            Err(problem) => view! { <p class="error" role="alert">{problem}</p> }.into_any(),
        })
    }
}

#[component]
fn LrFinder(form: RwSignal<RunForm>) -> impl IntoView {
    let admin = use_admin();
    let sweep = RwSignal::new(LrSweepForm::default());
    let status = RwSignal::new(None::<LrFindStatus>);
    let message = RwSignal::new(None::<Result<String, String>>);
    poll_lr_find(admin, status, message);

    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = form
            .with_untracked(RunForm::to_config)
            .and_then(|c| sweep.with_untracked(|s| s.to_body(c)));
        let body = match body {
            Ok(body) => body,
            Err(problem) => return message.set(Some(Err(problem))),
        };
        // The last sweep's outcome must not pass for this one's while the
        // request is on its way.
        status.set(Some(LrFindStatus {
            state: RunState::Preparing,
            message: "sending the sweep to the server".into(),
            points: vec![],
            suggested_lr: None,
        }));
        spawn_local(async move {
            let started = send_json::<Value, JobStarted>(
                "POST",
                "/api/admin/lr-find",
                &body,
                admin.token().as_deref(),
            )
            .await;
            let started = admin.check(started);
            message.set(Some(started.map(|j| j.message)));
            // Refused or not, the server's own status replaces the local one.
            poll_lr_find(admin, status, message);
        });
    };
    let spec = Signal::derive(move || {
        let (points, suggested) = status.with(|s| {
            s.as_ref()
                .map_or((vec![], None), |s| (s.points.clone(), s.suggested_lr))
        });
        let spec = ChartSpec::new(
            "Learning-rate sweep",
            "learning rate",
            vec![("smoothed loss", points)],
        )
        .log_x();
        match suggested {
            Some(lr) => spec.with_marker(lr, format!("suggested {}", format::scientific(lr))),
            None => spec,
        }
    });
    let suggested = move || status.with(|s| s.as_ref().and_then(|s| s.suggested_lr));
    let news = move || {
        status.with(|s| {
            s.as_ref()
                .map(|s| format!("{}: {}", state_name(s.state), s.message))
        })
    };

    view! {
        <form class="card lr-finder" on:submit=start>
            <h2>"Find a learning rate"</h2>
            <p class="small">
                "Trains briefly with the run form's settings while the learning rate "
                "grows, and suggests one where the loss falls fastest."
            </p>
            <div class="fields">
                {text_field(sweep, "From", "lr-start", |s| &s.start_lr, |s| &mut s.start_lr)}
                {text_field(sweep, "To", "lr-end", |s| &s.end_lr, |s| &mut s.end_lr)}
                {text_field(sweep, "Steps", "lr-steps", |s| &s.n_steps, |s| &mut s.n_steps)}
            </div>
            <div class="buttons">
                <button type="submit">"Run the sweep"</button>
                <button
                    type="button"
                    disabled=move || suggested().is_none()
                    on:click=move |_| {
                        if let Some(lr) = suggested() {
                            form.update(|f| f.lr = format::scientific(lr));
                        }
                    }
                >
                    "Use the suggested rate"
                </button>
            </div>
            <p role="status">{news}</p>
            <Outcome message=message/>
            <Chart spec=spec/>
        </form>
    }
}

/// Fetches the sweep's status, and again while it runs.
fn poll_lr_find(
    admin: Admin,
    status: RwSignal<Option<LrFindStatus>>,
    message: RwSignal<Option<Result<String, String>>>,
) {
    spawn_local(async move {
        let answer = admin
            .check(get_json::<LrFindStatus>("/api/admin/lr-find", admin.token().as_deref()).await);
        let running =
            matches!(&answer, Ok(s) if matches!(s.state, RunState::Preparing | RunState::Training));
        match answer {
            Ok(answer) => {
                if status.try_set(Some(answer)).is_some() {
                    return;
                }
            }
            Err(problem) => {
                let _ = message.try_set(Some(Err(problem)));
                return;
            }
        }
        if running {
            let again = move || poll_lr_find(admin, status, message);
            set_timeout(again, std::time::Duration::from_millis(LR_POLL_MS));
        }
    });
}

/// A run state as a word.
pub fn state_name(state: RunState) -> &'static str {
    match state {
        RunState::Preparing => "Preparing",
        RunState::Training => "Training",
        RunState::Stopping => "Stopping",
        RunState::Finished => "Finished",
        RunState::Stopped => "Stopped",
        RunState::Failed => "Failed",
    }
}
