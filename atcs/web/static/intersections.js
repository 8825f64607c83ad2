// Intersection panels: running and next plan, mode, override, acks, history, and the
// operator form. A panel is built once per intersection and updated in place.

import { translateCode } from "./i18n.js";
import { el } from "./views.js";

function phaseBar(plan, t, fmt) {
  const bar = el("div", { class: "phases", role: "list" });
  for (const p of plan.phases) {
    const inter = p.yellow_s + p.all_red_s;
    const green = el("span", { class: "phase-green", role: "listitem", "data-phase": p.phase_id, "data-green": String(p.green_s) });
    green.style.flexGrow = String(p.green_s);
    green.textContent = t("ix.phase", { phase: p.phase_id, green: fmt.num(p.green_s, 0) });
    const amber = el("span", { class: "phase-inter", "aria-hidden": "true" });
    amber.style.flexGrow = String(inter);
    bar.append(green, amber);
  }
  return bar;
}

function planBlock(plan, heading, t, fmt) {
  const box = el("div", { class: `plan mode-${plan.mode}`, "data-plan": plan.plan_id, "data-mode": plan.mode });
  box.append(
    el("h4", { text: heading }),
    el("p", { class: "plan-summary" },
      el("span", { class: `badge mode mode-${plan.mode}`, text: t(`mode.${plan.mode}`) }),
      el("span", { class: "cycle", "data-cycle": String(plan.cycle_s), text: t("ix.cycle", { cycle: fmt.num(plan.cycle_s, 0) }) }),
      el("span", { class: "muted", text: ` · ${t("ix.offset", { offset: fmt.num(plan.offset_s, 0) })} · ${plan.controller} · ${t("ix.since", { time: fmt.time(plan.valid_from) })}` })),
    phaseBar(plan, t, fmt),
  );
  const ack = [t(`plan.${plan.state}`)];
  if (plan.acked_by) ack.push(t("ix.ackby", { who: plan.acked_by }));
  if (plan.ack_detail) ack.push(`“${plan.ack_detail}”`);
  box.append(el("p", { class: `ack ack-${plan.state}`, "data-ack": plan.state }, el("strong", { text: `${t("ix.ack")}: ` }), el("span", { text: ack.join(" ") })));
  return box;
}

function buildForm(ix, onSubmit) {
  const form = el("form", { class: "override-form", "data-ix": ix.intersection_id, novalidate: true });
  const action = el("select", { name: "action", class: "op-action" });
  for (const a of ["hold", "fixed", "release"]) action.append(el("option", { value: a, "data-i18n": `op.${a}` }));
  const plan = el("select", { name: "plan_name", class: "op-plan" });
  for (const name of ix.fixed_plans) plan.append(el("option", { value: name, text: name }));
  const reason = el("input", { name: "reason", class: "op-reason", maxlength: "1000", autocomplete: "off" });
  const fields = el("fieldset", { class: "op-fields" },
    el("legend", { "data-i18n": "op.title" }),
    el("label", {}, el("span", { "data-i18n": "op.action" }), action),
    el("label", { class: "plan-label" }, el("span", { "data-i18n": "op.plan" }), plan),
    el("label", { class: "reason-label" }, el("span", { "data-i18n": "op.reason" }), reason),
    el("button", { type: "submit", class: "op-submit", "data-i18n": "op.submit" }));
  form.append(fields, el("p", { class: "op-note muted", "data-i18n": "op.viewer" }), el("p", { class: "op-msg message", role: "status", "aria-live": "polite", hidden: true }));
  const syncPlan = () => { form.querySelector(".plan-label").hidden = action.value !== "fixed"; };
  action.addEventListener("change", syncPlan);
  syncPlan();
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { action: action.value, reason: reason.value };
    if (action.value === "fixed") body.plan_name = plan.value;
    onSubmit(ix.intersection_id, body, form);
  });
  return form;
}

// Phase-by-phase mode: the signal's state in place of the running plan.
function signalBlock(s, t, fmt) {
  const phase = s.phase === null ? t("ix.noplan") : t("ix.signal.now", {
    phase: s.phase, interval: t(`interval.${s.interval}`), secs: fmt.num(s.time_in_interval_s ?? 0, 0),
  });
  const lines = [el("p", { class: "ix-signal-now", text: `${t("ix.signal")}: ${phase}` })];
  if (s.controller_mode) lines.push(el("p", { class: "muted", text: t(`signal.${s.controller_mode}`) }));
  if (s.recall.length) lines.push(el("p", { class: "ix-recall", text: t("ix.signal.recall", { phases: s.recall.join(", ") }) }));
  if (s.state_age_s !== null) lines.push(el("p", { class: "muted", text: t("ix.signal.age", { secs: fmt.num(s.state_age_s, 1), n: s.commands_sent }) }));
  return el("div", { class: "ix-signal" }, ...lines);
}

export function renderIntersections(list, intersections, t, fmt, who, onSubmit) {
  for (const ix of intersections) {
    let card = list.querySelector(`article[data-ix="${CSS.escape(ix.intersection_id)}"]`);
    if (!card) {
      card = el("article", { class: "ix", "data-ix": ix.intersection_id, id: `ix-${ix.intersection_id}` },
        el("header", {},
          el("h3", { class: "ix-name" }),
          el("span", { class: "badge mode ix-mode" }),
          el("span", { class: "ix-source muted" })),
        el("p", { class: "ix-override", hidden: true }),
        el("div", { class: "ix-running" }),
        el("div", { class: "ix-pending" }),
        el("p", { class: "ix-stale", hidden: true }),
        el("p", { class: "ix-reason" }),
        el("details", { class: "ix-history" },
          el("summary", { "data-i18n": "ix.history" }),
          el("table", { class: "plans" }, el("thead", {}, el("tr", {},
            el("th", { "data-i18n": "ix.col.time" }), el("th", { "data-i18n": "ix.col.mode" }),
            el("th", { "data-i18n": "ix.col.cycle" }), el("th", { "data-i18n": "ix.col.greens" }),
            el("th", { "data-i18n": "ix.col.state" }))), el("tbody", {})),
          el("ul", { class: "events" })),
        buildForm(ix, onSubmit));
      list.append(card);
    }
    card.querySelector(".ix-name").textContent = `${ix.name || ix.intersection_id}`;
    const mode = ix.mode || "none";
    const badge = card.querySelector(".ix-mode");
    badge.className = `badge mode ix-mode mode-${mode}`;
    badge.textContent = `${t("ix.mode")}: ${t(`mode.${mode}`)}`;
    card.dataset.mode = mode;
    card.dataset.source = ix.source;
    card.querySelector(".ix-source").textContent = `${t("ix.source")}: ${t(`source.${ix.source}`)}`;
    const ov = card.querySelector(".ix-override");
    ov.hidden = !ix.override;
    if (ix.override) {
      const o = ix.override;
      const action = t(`action.${o.action}`);
      const what = o.plan_name ? `${action} “${o.plan_name}”` : action;
      ov.textContent = t("ix.override", { action: what, who: o.who, why: o.why, since: t("ix.since", { time: fmt.time(o.since) }) });
    }
    const running = card.querySelector(".ix-running");
    running.replaceChildren(ix.running ? planBlock(ix.running, t("ix.running"), t, fmt) : el("p", { class: "muted", text: `${t("ix.running")}: ${t("ix.noplan")}` }));
    if (ix.signal) running.replaceChildren(signalBlock(ix.signal, t, fmt));
    const pending = card.querySelector(".ix-pending");
    pending.replaceChildren(...(ix.pending ? [planBlock(ix.pending, t("ix.pending", { time: fmt.time(ix.pending.valid_from) }), t, fmt)] : []));
    const stale = card.querySelector(".ix-stale");
    stale.hidden = !ix.stale.length;
    const lang = fmt.lang;
    const reason = (prefix, code, params, text) => (code ? translateCode(lang, prefix, code, params) : text);
    stale.textContent = `${t("ix.stale")}: ${ix.stale_codes.map((c) => reason("stale", c.code, c.params, "")).join("; ")}`;
    const last = card.querySelector(".ix-reason");
    last.textContent = `${t("ix.reason")}: ${reason("reason", ix.last_reason_code, ix.last_reason_params, ix.last_reason)}`;
    last.dataset.code = ix.last_reason_code;
    const rows = ix.plans.slice(0, 8).map((p) => el("tr", { "data-plan": p.plan_id, "data-mode": p.mode },
      el("td", { text: fmt.time(p.valid_from) }), el("td", { text: t(`mode.${p.mode}`) }),
      el("td", { class: "num", text: fmt.num(p.cycle_s, 0) }),
      el("td", { text: p.phases.map((x) => `${x.phase_id} ${fmt.num(x.green_s, 0)}`).join(", ") }),
      el("td", { text: t(`plan.${p.state}`) })));
    card.querySelector("table.plans tbody").replaceChildren(...rows);
    card.querySelector("ul.events").replaceChildren(...ix.history.slice(0, 8).map((e) => el("li", { "data-code": e.code, text: `${fmt.time(e.at)} ${t(`event.${e.kind}`)}: ${reason("reason", e.code, e.params, e.text)}` })));
    const form = card.querySelector("form.override-form");
    form.querySelector("fieldset").disabled = !who.may_operate;
    form.querySelector(".op-note").hidden = Boolean(who.may_operate);
    form.dataset.allowed = String(Boolean(who.may_operate));
  }
}
