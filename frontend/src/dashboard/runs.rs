//! The list of training runs, with what can be done to each: make it the
//! serving run, resume it, sweep `dcut` on its validation split (and see
//! the curve with the chosen value), and download its submission.

use flukeid_shared::api::{JobStarted, RunState, RunSummary, ValidateRequest, ValidateResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;

use super::form::DcutSweepForm;
use super::page::{state_name, text_field, Chart, Outcome};
use super::plot::ChartSpec;
use crate::admin::{use_admin, Admin};
use crate::api::http::{download, get_json, send_json};
use crate::format;

#[derive(Clone, Copy)]
struct Runs {
    admin: Admin,
    list: RwSignal<Option<Vec<RunSummary>>>,
    message: RwSignal<Option<Result<String, String>>>,
    sweep: RwSignal<Option<ValidateResponse>>,
    dcut_form: RwSignal<DcutSweepForm>,
    /// The run an action is waiting on, shown as busy.
    busy: RwSignal<Option<String>>,
}

/// The runs, newest first, with their actions.
#[component]
pub fn RunsList() -> impl IntoView {
    let runs = Runs {
        admin: use_admin(),
        list: RwSignal::new(None),
        message: RwSignal::new(None),
        sweep: RwSignal::new(None),
        dcut_form: RwSignal::new(DcutSweepForm::default()),
        busy: RwSignal::new(None),
    };
    refresh(runs);

    let rows = move || {
        runs.list.get().map(|list| {
            if list.is_empty() {
                return view! { <p>"No runs yet; start one above."</p> }.into_any();
            }
            let rows = list
                .into_iter()
                .rev()
                .map(|run| view! { <RunRow runs=runs run=run/> })
                .collect_view();
            view! {
                <div class="table-wrap">
                    <table>
                        <thead>
                            <tr>
                                <th scope="col">"Run"</th>
                                <th scope="col">"State"</th>
                                <th scope="col">"Backbone"</th>
                                <th scope="col">"Epochs"</th>
                                <th scope="col">"MAP@5"</th>
                                <th scope="col">"dcut"</th>
                                <th scope="col">"Actions"</th>
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            }
            .into_any()
        })
    };
    let dcut_form = runs.dcut_form;

    view! {
        <section class="card runs">
            <header>
                <h2>"Runs"</h2>
                <button type="button" on:click=move |_| refresh(runs)>"Refresh"</button>
            </header>
            <Outcome message=runs.message/>
            {rows}
            <details>
                <summary>"dcut sweep settings"</summary>
                <div class="fields">
                    {text_field(dcut_form, "Smallest dcut", "dcut-lo", |f| &f.lo, |f| &mut f.lo)}
                    {text_field(dcut_form, "Largest dcut", "dcut-hi", |f| &f.hi, |f| &mut f.hi)}
                    {text_field(dcut_form, "Values", "dcut-n", |f| &f.n, |f| &mut f.n)}
                </div>
            </details>
            {move || runs.sweep.get().map(|sweep| view! { <SweepChart sweep=sweep/> })}
        </section>
    }
}

#[component]
fn RunRow(runs: Runs, run: RunSummary) -> impl IntoView {
    let id = run.id.clone();
    let busy = {
        let id = id.clone();
        Memo::new(move |_| runs.busy.with(|b| b.as_deref() == Some(id.as_str())))
    };
    let resumable = matches!(run.state, RunState::Stopped | RunState::Failed);
    let epochs = format!(
        "{} / {}",
        run.epochs_done,
        run.n_epochs.map_or("?".into(), |n| n.to_string())
    );
    let map5 = run.val_map5.map_or("–".into(), |m| format!("{m:.3}"));
    let dcut = run
        .calibrated_dcut
        .map_or("–".into(), |d| format!("{d:.2}"));
    let state = format!(
        "{}{}",
        state_name(run.state),
        if run.serving { " · serving" } else { "" }
    );
    let (serve_id, resume_id, sweep_id, csv_id) = (id.clone(), id.clone(), id.clone(), id.clone());

    view! {
        <tr class:serving=run.serving>
            <th scope="row">
                {id.clone()}
                <br/>
                <span class="small">{format::utc_time(run.created_at)}</span>
            </th>
            <td title=run.message.clone()>{state}</td>
            <td>{run.backbone.clone().unwrap_or_else(|| "–".into())}</td>
            <td>{epochs}</td>
            <td>{map5}</td>
            <td>{dcut}</td>
            <td class="actions">
                <button
                    type="button"
                    disabled=move || busy.get() || !run.has_model || run.serving
                    on:click=move |_| act(runs, serve_id.clone(), "serve")
                >
                    "Make serving"
                </button>
                <button
                    type="button"
                    disabled=move || busy.get() || !resumable
                    on:click=move |_| act(runs, resume_id.clone(), "resume")
                >
                    "Resume"
                </button>
                <button
                    type="button"
                    disabled=move || busy.get() || !run.has_model
                    on:click=move |_| sweep_dcut(runs, sweep_id.clone())
                >
                    "Sweep dcut"
                </button>
                <button
                    type="button"
                    disabled=move || busy.get() || !run.has_model
                    on:click=move |_| fetch_submission(runs, csv_id.clone())
                >
                    "submission.csv"
                </button>
            </td>
        </tr>
    }
}

#[component]
fn SweepChart(sweep: ValidateResponse) -> impl IntoView {
    let map5: Vec<(f64, f64)> = sweep
        .table
        .iter()
        .map(|s| (f64::from(s.dcut), s.map5))
        .collect();
    let first: Vec<(f64, f64)> = sweep
        .table
        .iter()
        .map(|s| (f64::from(s.dcut), s.new_whale_first))
        .collect();
    let title = format!("Validation of {} by dcut", sweep.run_id);
    let mut spec = ChartSpec::new(
        &title,
        "dcut",
        vec![("MAP@5", map5), ("share new_whale first", first)],
    );
    if let Some(dcut) = sweep.calibrated_dcut {
        spec = spec.with_marker(f64::from(dcut), format!("chosen dcut {dcut:.2}"));
    }
    view! { <Chart spec=Signal::stored(spec)/> }
}

fn refresh(runs: Runs) {
    spawn_local(async move {
        let answer =
            get_json::<Vec<RunSummary>>("/api/admin/runs", runs.admin.token().as_deref()).await;
        match runs.admin.check(answer) {
            Ok(list) => {
                let _ = runs.list.try_set(Some(list));
            }
            Err(problem) => {
                let _ = runs.message.try_set(Some(Err(problem)));
            }
        }
    });
}

/// `POST /api/admin/runs/{id}/{action}`, then the list again.
fn act(runs: Runs, run_id: String, action: &'static str) {
    runs.busy.set(Some(run_id.clone()));
    spawn_local(async move {
        let url = format!("/api/admin/runs/{run_id}/{action}");
        let answer = send_json::<Value, JobStarted>(
            "POST",
            &url,
            &Value::Null,
            runs.admin.token().as_deref(),
        )
        .await;
        let _ = runs
            .message
            .try_set(Some(runs.admin.check(answer).map(|j| j.message)));
        let _ = runs.busy.try_set(None);
        refresh(runs);
    });
}

fn sweep_dcut(runs: Runs, run_id: String) {
    let request: ValidateRequest = match runs.dcut_form.with_untracked(DcutSweepForm::to_request) {
        Ok(request) => request,
        Err(problem) => return runs.message.set(Some(Err(problem))),
    };
    runs.busy.set(Some(run_id.clone()));
    runs.message.set(Some(Ok(format!(
        "Validating {run_id}; embedding the validation split takes a while…"
    ))));
    spawn_local(async move {
        let url = format!("/api/admin/runs/{run_id}/validate");
        let answer =
            send_json::<_, ValidateResponse>("POST", &url, &request, runs.admin.token().as_deref())
                .await;
        match runs.admin.check(answer) {
            Ok(sweep) => {
                let chosen = sweep
                    .calibrated_dcut
                    .map_or("none".into(), |d| format!("{d:.2}"));
                let _ = runs
                    .message
                    .try_set(Some(Ok(format!("{run_id}: chosen dcut {chosen}."))));
                let _ = runs.sweep.try_set(Some(sweep));
            }
            Err(problem) => {
                let _ = runs.message.try_set(Some(Err(problem)));
            }
        }
        let _ = runs.busy.try_set(None);
        refresh(runs);
    });
}

fn fetch_submission(runs: Runs, run_id: String) {
    runs.busy.set(Some(run_id.clone()));
    runs.message.set(Some(Ok(format!(
        "Writing the submission of {run_id}; this embeds the test set…"
    ))));
    spawn_local(async move {
        let url = format!("/api/admin/runs/{run_id}/submission.csv");
        let file_name = format!("{run_id}-submission.csv");
        let done = download(&url, runs.admin.token().as_deref(), &file_name).await;
        let _ = runs.message.try_set(Some(
            runs.admin
                .check(done)
                .map(|()| format!("Saved {file_name}.")),
        ));
        let _ = runs.busy.try_set(None);
    });
}
