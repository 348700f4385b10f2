/* dozor resident page: zone choice, live state over SSE (current state first), shelters, Web Push. */
"use strict";
(function () {
  const T = {
    uk: {
      title: "Тривоги у вашому районі", zone: "Район", locate: "Визначити за місцем",
      idle: "Немає тривоги", active: "ТРИВОГА", active_exercise: "НАВЧАЛЬНА ТРИВОГА", all_clear_exercise: "НАВЧАННЯ ЗАВЕРШЕНО", all_clear: "ВІДБІЙ ТРИВОГИ", cancelled: "Повідомлення скасовано",
      exercise: "НАВЧАННЯ — НЕ СПРАВЖНЯ ТРИВОГА", connecting: "з'єднання…", live: "наживо", offline: "немає з'єднання",
      shelters: "Найближчі укриття", noShelters: "Укриття для цього району не вказані.",
      push: "Отримувати сповіщення", tester: "Я тестувальник: показувати навчання (з позначкою)",
      pushOk: "Сповіщення увімкнено.", pushNo: "Сповіщення недоступні в цьому браузері.",
      pushDenied: "Сповіщення заборонено в налаштуваннях браузера.", pushFail: "Не вдалося підписатися: ",
      locating: "Визначаємо…", outside: "Ваше місце поза відомими районами.", geoFail: "Не вдалося визначити місце.",
      since: "з", capacity: "місць", km: "км", m: "м",
    },
    en: {
      title: "Alerts in your district", zone: "District", locate: "Use my location",
      idle: "No alert", active: "ALERT", active_exercise: "EXERCISE ALERT", all_clear_exercise: "EXERCISE OVER", all_clear: "ALL CLEAR", cancelled: "Alert withdrawn",
      exercise: "EXERCISE — NOT A REAL ALERT", connecting: "connecting…", live: "live", offline: "offline",
      shelters: "Nearest shelters", noShelters: "No shelters listed for this district.",
      push: "Get notifications", tester: "I am a tester: show exercises (marked)",
      pushOk: "Notifications are on.", pushNo: "Notifications are not available in this browser.",
      pushDenied: "Notifications are blocked in the browser settings.", pushFail: "Could not subscribe: ",
      locating: "Locating…", outside: "Your location is outside the known districts.", geoFail: "Could not get your location.",
      since: "since", capacity: "places", km: "km", m: "m",
    },
  };
  const $ = (id) => document.getElementById(id);
  const store = window.localStorage;
  let lang = store.getItem("dozor.lang") || ((navigator.language || "uk").startsWith("uk") ? "uk" : "en");
  if (!T[lang]) lang = "uk";
  let cfg = { zones: [], vapidPublicKey: null, push: false };
  let zone = null, pos = null, es = null, shown = null;
  const tester = () => $("tester").checked;

  function t(key) { return (T[lang] && T[lang][key]) || T.en[key] || key; }
  function zoneName(z) { return (z.name && (z.name[lang] || z.name.uk || z.name.en)) || z.id; }

  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      const key = el.getAttribute("data-i18n");
      if (el.id === "status") return;  // rendered from state
      if (el.id === "conn") return;
      el.textContent = t(key);
    });
    document.querySelectorAll(".lang button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.lang === lang)));
    fillZones();
    if (shown) render(shown, true);
    loadShelters();
  }

  function fillZones() {
    const sel = $("zone");
    sel.textContent = "";
    for (const z of cfg.zones) {
      const o = document.createElement("option");
      o.value = z.id; o.textContent = zoneName(z);
      sel.appendChild(o);
    }
    if (zone) sel.value = zone;
  }

  function render(s, force) {
    if (!force && shown && shown.zone === s.zone && s.version < shown.version) return;  // never go back
    shown = s;
    (window.dozorSeen = window.dozorSeen || []).push({ version: s.version, status: s.status, mode: s.mode });
    const box = $("state");
    const status = s.status || "idle";
    const exercise = s.mode === "exercise";
    box.className = "state " + status + (exercise ? " exercise-mode" : "");
    box.dataset.status = status;
    box.dataset.version = String(s.version);
    box.dataset.mode = s.mode || "";
    $("exercise").hidden = !exercise;
    $("status").textContent = exercise && T[lang][status + "_exercise"] ? t(status + "_exercise") : t(status);
    $("headline").textContent = (s.headline && (s.headline[lang] || s.headline.uk || s.headline.en)) || "";
    $("instruction").textContent = (s.instruction && (s.instruction[lang] || s.instruction.uk)) || "";
    $("since").textContent = s.sent ? t("since") + " " + new Date(s.sent).toLocaleTimeString(lang === "uk" ? "uk-UA" : "en-GB") : "";
  }

  function connect() {
    if (es) es.close();
    if (!zone) return;
    const url = "/api/v1/zones/" + encodeURIComponent(zone) + "/events" + (tester() ? "?tester=1" : "");
    setConn("connecting");
    es = new EventSource(url);
    es.addEventListener("open", () => setConn("live"));
    es.addEventListener("error", () => setConn("offline"));
    es.addEventListener("state", (ev) => {
      try { const s = JSON.parse(ev.data); if (s.zone === zone) render(s, false); } catch (err) { /* keep last good state */ }
    });
  }
  function setConn(k) { const c = $("conn"); c.textContent = t(k); c.className = "conn " + k; c.dataset.state = k; }

  function fmtDist(m) { return m >= 1000 ? (m / 1000).toFixed(1) + " " + t("km") : Math.round(m) + " " + t("m"); }

  async function loadShelters() {
    if (!zone) return;
    const q = pos ? "?lat=" + pos.lat + "&lon=" + pos.lon : "";
    const list = $("shelter-list");
    try {
      const r = await fetch("/api/v1/zones/" + encodeURIComponent(zone) + "/shelters" + q);
      const data = await r.json();
      list.textContent = "";
      for (const s of data.shelters || []) {
        const li = document.createElement("li");
        const name = document.createElement("strong");
        name.textContent = s.name[lang] || s.name.uk;
        li.appendChild(name);
        const bits = [];
        if (s.address && (s.address[lang] || s.address.uk)) bits.push(s.address[lang] || s.address.uk);
        if (s.distance_m !== undefined) bits.push(fmtDist(s.distance_m));
        if (s.capacity) bits.push(s.capacity + " " + t("capacity"));
        if (bits.length) li.appendChild(document.createTextNode(" — " + bits.join(", ")));
        li.dataset.id = s.id;
        list.appendChild(li);
      }
      $("no-shelters").hidden = (data.shelters || []).length > 0;
    } catch (err) { /* the state banner matters more than the list */ }
  }

  function chooseZone(z) {
    if (!z) return;
    zone = z; shown = null;
    store.setItem("dozor.zone", z);
    $("zone").value = z;
    const u = new URL(location.href); u.searchParams.set("zone", z); history.replaceState(null, "", u);
    connect(); loadShelters(); resubscribe();
  }

  function locate() {
    const msg = $("locate-msg");
    if (!navigator.geolocation) { msg.textContent = t("geoFail"); return; }
    msg.textContent = t("locating");
    navigator.geolocation.getCurrentPosition(async (p) => {
      pos = { lat: p.coords.latitude, lon: p.coords.longitude };
      try {
        const r = await fetch("/api/v1/residents/locate?lat=" + pos.lat + "&lon=" + pos.lon);
        const d = await r.json();
        if (d.zone) { msg.textContent = zoneName(cfg.zones.find((z) => z.id === d.zone) || { id: d.zone }); chooseZone(d.zone); }
        else { msg.textContent = t("outside"); loadShelters(); }
      } catch (err) { msg.textContent = t("geoFail"); }
    }, () => { msg.textContent = t("geoFail"); }, { enableHighAccuracy: false, timeout: 10000, maximumAge: 300000 });
  }

  function b64ToBytes(b64) {
    const s = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  }

  async function registerSW() {
    if (!("serviceWorker" in navigator)) return null;
    try { return await navigator.serviceWorker.register("/sw.js", { scope: "/" }); } catch (err) { return null; }
  }

  async function resubscribe() {
    // Already subscribed in this browser: move the subscription to the chosen zone / tester choice.
    if (store.getItem("dozor.pushed") !== "1" || !("serviceWorker" in navigator) || !zone) return;
    try {
      const reg = await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.getSubscription();
      if (!sub) return;
      await fetch("/api/v1/push/subscriptions", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ subscription: sub.toJSON(), zones: [zone], tester: tester(), lang }),
      });
    } catch (err) { /* the next explicit subscribe fixes it */ }
  }

  async function subscribePush() {
    const msg = $("push-msg");
    if (!cfg.push || !("PushManager" in window) || !("Notification" in window)) { msg.textContent = t("pushNo"); return; }
    const perm = await Notification.requestPermission();
    if (perm !== "granted") { msg.textContent = t("pushDenied"); return; }
    try {
      const reg = await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(cfg.vapidPublicKey) });
      const r = await fetch("/api/v1/push/subscriptions", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ subscription: sub.toJSON(), zones: [zone], tester: tester(), lang }),
      });
      msg.textContent = r.ok ? t("pushOk") : t("pushFail") + r.status;
      if (r.ok) store.setItem("dozor.pushed", "1");
    } catch (err) { msg.textContent = t("pushFail") + (err && err.message ? err.message : err); }
  }

  async function main() {
    document.querySelectorAll(".lang button").forEach((b) => b.addEventListener("click", () => {
      lang = b.dataset.lang; store.setItem("dozor.lang", lang); applyLang();
    }));
    $("tester").checked = store.getItem("dozor.tester") === "1";
    $("tester").addEventListener("change", () => {
      store.setItem("dozor.tester", tester() ? "1" : "0"); shown = null; connect(); resubscribe();
    });
    $("zone").addEventListener("change", (e) => chooseZone(e.target.value));
    $("locate").addEventListener("click", locate);
    $("push").addEventListener("click", subscribePush);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.addEventListener("message", (e) => {
        const d = e.data || {};
        if (d.type === "push" && d.state && d.state.zone === zone && (d.state.mode !== "exercise" || tester())) render(d.state, false);
        document.body.dataset.lastPush = d.state ? String(d.state.version) : "";
      });
    }
    registerSW();
    try { cfg = await (await fetch("/api/v1/residents/config")).json(); } catch (err) { /* retried by SSE below */ }
    const fromUrl = new URL(location.href).searchParams.get("zone");
    const ids = cfg.zones.map((z) => z.id);
    zone = (fromUrl && ids.includes(fromUrl) && fromUrl) || (ids.includes(store.getItem("dozor.zone")) && store.getItem("dozor.zone")) || ids[0] || null;
    applyLang();
    chooseZone(zone);
    document.body.dataset.ready = "1";
  }
  main();
})();
