/* dozor service worker: shows pushed zone states; a newer version replaces an older one (tag per zone). */
"use strict";
self.addEventListener("install", (e) => e.waitUntil(self.skipWaiting()));
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

async function handlePush(msg) {
  const lang = (msg && msg.lang) || "uk";
  const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const c of all) c.postMessage({ type: "push", state: msg });
  if (!msg || !msg.zone) {
    return self.registration.showNotification("dozor", { body: "Перевірте стан тривоги / Check alert status", tag: "dozor" });
  }
  const headline = (msg.headline && (msg.headline[lang] || msg.headline.uk || msg.headline.en)) || "dozor";
  const body = (msg.instruction && (msg.instruction[lang] || msg.instruction.uk)) || "";
  return self.registration.showNotification(headline, {
    body, tag: "zone-" + msg.zone, renotify: true,
    requireInteraction: msg.status === "active",
    data: { url: "/?zone=" + encodeURIComponent(msg.zone), version: msg.version },
  });
}

self.addEventListener("push", (event) => {
  let msg = null;
  try { msg = event.data ? event.data.json() : null; } catch (err) { msg = null; }
  event.waitUntil(handlePush(msg));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(self.clients.openWindow(url));
});
