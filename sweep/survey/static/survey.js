// The survey page: ask the server for a pair, show both images once both have loaded, send the click, repeat.
"use strict";

const $ = (id) => document.getElementById(id);
const buttons = () => document.querySelectorAll("button[data-choice]");
let current = null; // the pair on screen: {token, position, total, left, right}

function setBusy(busy) {
  buttons().forEach((b) => { b.disabled = busy; });
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

async function call(url, options) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

function load(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(url);
    img.onerror = () => reject(new Error("an image did not load"));
    img.src = url;
  });
}

function finish(total) {
  current = null;
  $("question").hidden = true;
  $("progress").textContent = `${total} / ${total}`;
  $("total").textContent = total;
  $("done").hidden = false;
}

async function next() {
  setBusy(true);
  const pair = await call("api/next");
  if (pair.done) return finish(pair.total);
  await Promise.all([load(pair.left), load(pair.right)]); // never show a half-swapped pair
  $("left").querySelector("img").src = pair.left;
  $("right").querySelector("img").src = pair.right;
  $("progress").textContent = `${pair.position} / ${pair.total}`;
  $("question").hidden = false;
  current = pair;
  setBusy(false);
}

async function vote(choice) {
  if (!current) return;
  const token = current.token;
  current = null; // one vote per pair shown, however fast the clicks
  setBusy(true);
  try {
    await call("api/vote", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token, choice }),
    });
    $("error").hidden = true;
    await next();
  } catch (e) {
    showError(`${e.message}. Reload the page to go on.`);
  }
}

buttons().forEach((b) => b.addEventListener("click", () => vote(b.dataset.choice)));
document.addEventListener("keydown", (e) => {
  const choice = { ArrowLeft: "left", ArrowRight: "right", ArrowDown: "cant_tell" }[e.key];
  if (choice && current) { e.preventDefault(); vote(choice); }
});

next().catch((e) => showError(`${e.message}. Reload the page to try again.`));
