// The alarm list (data-role="alarms"), shown on every layout: severity, translated message,
// subject, since when, ended, who acknowledged with what comment. Logged-in users
// acknowledge with a comment. On the wall an unacknowledged major or critical alarm makes
// the panel flash and, when sound is on, beeps every few seconds.

import { translateCode } from "./i18n.js";
import { el } from "./views.js";

const URGENT = new Set(["critical", "major"]);

function message(lang, alarm) {
  const params = { ...alarm.params };
  if (alarm.code.startsWith("incident.")) {
    const text = translateCode(lang, "alarm", alarm.code, params);
    if (text !== `alarm.${alarm.code}`) return text;
    return translateCode(lang, "alarm", "incident", params);
  }
  return translateCode(lang, "alarm", alarm.code, params);
}

function alarmItem(alarm, ctx) {
  const { t, fmt, lang, who, onAck, zone } = ctx;
  const state = alarm.active ? t("alarms.active") : t("alarms.ended", { time: `${fmt.time(alarm.ended_at)} ${zone}` });
  const item = el("li", {
    class: `alarm sev-${alarm.severity}${alarm.acknowledged ? " acked" : ""}${alarm.active ? " active" : " ended"}`,
    "data-alarm": alarm.alarm_id, "data-kind": alarm.kind, "data-subject": alarm.subject,
    "data-severity": alarm.severity, "data-active": String(alarm.active), "data-acknowledged": String(alarm.acknowledged),
  },
  el("span", { class: `sev-badge sev-${alarm.severity}`, text: t(`sev.${alarm.severity}`) }),
  el("span", { class: "alarm-subject", text: alarm.subject_name }),
  el("span", { class: "alarm-text", text: message(lang, alarm) }),
  el("span", { class: "alarm-time muted", text: `${t("alarms.since", { time: `${fmt.time(alarm.started_at)} ${zone}` })} · ${state}` }));
  if (alarm.acknowledged) {
    item.append(el("span", { class: "alarm-ack muted", text: t("alarms.acked", { who: alarm.acked_by, comment: alarm.ack_comment }) }));
  } else if (who.user) {
    const form = el("form", { class: "ack-form" });
    const input = el("input", { class: "ack-comment", name: "comment", maxlength: "1000", placeholder: t("alarms.ack.comment"), autocomplete: "off" });
    const msg = el("span", { class: "ack-msg message", hidden: true });
    form.append(input, el("button", { type: "submit", class: "ack-send", text: t("alarms.ack") }), msg);
    form.addEventListener("submit", (ev) => { ev.preventDefault(); onAck(alarm.alarm_id, input.value, msg); });
    item.append(form);
  }
  return item;
}

export function renderAlarms(box, alarms, ctx) {
  const list = box.querySelector("ul.alarm-list");
  // keep a form an operator is typing into: rebuild only when the alarms changed
  const sig = JSON.stringify([ctx.lang, ctx.who.user, alarms.current.map((a) => [a.alarm_id, a.active, a.acknowledged, a.params])]);
  const typing = list.querySelector("input.ack-comment:focus");
  if (list.dataset.sig !== sig && !(typing && typing.value)) {
    list.dataset.sig = sig;
    list.replaceChildren(...alarms.current.map((a) => alarmItem(a, ctx)));
  }
  box.querySelector(".alarms-none").hidden = alarms.current.length > 0;
  const count = box.querySelector(".alarm-count");
  count.textContent = alarms.unacknowledged ? ctx.t("alarms.unacked", { n: alarms.unacknowledged }) : "";
  count.dataset.n = String(alarms.unacknowledged);
  const urgent = alarms.current.some((a) => a.active && !a.acknowledged && URGENT.has(a.severity));
  box.dataset.urgent = String(urgent);
  document.body.dataset.alarmUrgent = String(urgent);
  const history = box.querySelector("ul.alarm-history");
  history.replaceChildren(...alarms.history.slice(0, 5).map((a) => el("li", { class: `sev-${a.severity}`, text: `${ctx.fmt.time(a.started_at)} ${a.subject_name}: ${message(ctx.lang, a)} (${a.acked_by})` })));
  return urgent;
}

// A short two-tone beep with the Web Audio API (no sound file to fetch).
export class Beeper {
  constructor() { this.ctx = null; this.last = 0; }
  beep() {
    const now = Date.now();
    if (now - this.last < 5000) return;
    this.last = now;
    try {
      this.ctx = this.ctx || new (window.AudioContext || window.webkitAudioContext)();
      const g = this.ctx.createGain();
      g.gain.value = 0.15;
      g.connect(this.ctx.destination);
      [880, 660].forEach((f, i) => {
        const o = this.ctx.createOscillator();
        o.frequency.value = f;
        o.connect(g);
        o.start(this.ctx.currentTime + i * 0.25);
        o.stop(this.ctx.currentTime + i * 0.25 + 0.2);
      });
    } catch (_e) { /* no audio device: the flashing still shows it */ }
  }
}
