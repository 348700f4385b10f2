// dozor virtual board: the MicroPython WebAssembly interpreter behind a serial line.
//
// simulators/board.py owns the pty and relays bytes: what the host writes to the pty arrives on this
// process's stdin, and what this process writes to stdout goes back to the host. On top of runPython
// this script implements what a MicroPython board's UART REPL offers:
//   friendly REPL (">>> ", "... " continuation, backspace, Ctrl-C, Ctrl-D soft reset, Ctrl-A/Ctrl-B),
//   raw REPL (Ctrl-A; Ctrl-D executes; "OK" out \x04 err \x04 ">"), raw-paste mode (Ctrl-E 'A' Ctrl-A,
//   window flow control), soft reset and machine.reset().
// A reset ends this process with an exit code that tells board.py how to restart it (one interpreter
// per process: the WebAssembly module keeps global state). The board's filesystem lives in a host
// folder (--flash): it is loaded at start and written back after every command, so it survives resets
// and can be inspected.
//
// usage: node board_node.mjs --node-modules DIR --flash DIR --rom DIR [--mode boot|raw|friendly]
//        [--reset-cause N] [--fault-corrupt NAME] [--fault-die-after-execs N] [--uart-fd FD]
// --uart-fd: a pipe from board.py; bytes the firmware writes to its gateway UART (machine.UART(2)) go there.
import fs from "node:fs";
import path from "node:path";

const EXIT_SOFT_RAW = 10;
const EXIT_SOFT_FRIENDLY = 11;
const EXIT_HARD = 12;
const EXIT_DIED = 13;
const HIDDEN = new Set(["tmp", "home", "dev", "proc", "rom"]);
const PASTE_WINDOW = 128;

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const flashDir = args["flash"];
const mode0 = args["mode"] || "boot";
const corruptName = args["fault-corrupt"] || null;
const uartFd = args["uart-fd"] ? parseInt(args["uart-fd"], 10) : -1;
let dieAfterExecs = args["fault-die-after-execs"] ? parseInt(args["fault-die-after-execs"], 10) : -1;

const { loadMicroPython } = await import(
  path.resolve(args["node-modules"], "@micropython/micropython-webassembly-pyscript/micropython.mjs"));

// ---- output: Python stdout is "cooked" like a real UART (\n -> \r\n) ----
let out = [];
let prevByte = 0;
function emitRaw(bytes) { for (const b of bytes) out.push(b); }
function emit(str) { emitRaw(Buffer.from(str, "latin1")); }
function cooked(b) {
  if (b === 10 && prevByte !== 13) out.push(13);
  out.push(b);
  prevByte = b;
}
function flush() {
  if (out.length) {
    fs.writeSync(1, Buffer.from(out));
    out = [];
  }
}

const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  linebuffer: false,
  stdout: (d) => { for (const b of d) cooked(b); },
  stderr: (d) => { for (const b of d) cooked(b); },
});

// ---- filesystem: host folder <-> MEMFS root ----
function loadFlash(hostDir, mpDir) {
  for (const name of fs.readdirSync(hostDir)) {
    const host = path.join(hostDir, name);
    const target = (mpDir === "/" ? "" : mpDir) + "/" + name;
    if (fs.statSync(host).isDirectory()) {
      try { mp.FS.mkdir(target); } catch (e) { /* exists */ }
      loadFlash(host, target);
    } else {
      mp.FS.writeFile(target, fs.readFileSync(host));
    }
  }
}
function snapshot(mpDir, acc) {
  for (const name of mp.FS.readdir(mpDir)) {
    if (name === "." || name === "..") continue;
    if (mpDir === "/" && HIDDEN.has(name)) continue;
    const p = (mpDir === "/" ? "" : mpDir) + "/" + name;
    const st = mp.FS.stat(p);
    if (mp.FS.isDir(st.mode)) {
      acc.set(p, null);
      snapshot(p, acc);
    } else {
      acc.set(p, Buffer.from(mp.FS.readFile(p)));
    }
  }
  return acc;
}
let last = new Map();
let corrupted = false;
function syncFlash() {
  const now = snapshot("/", new Map());
  for (const [p, data] of now) {
    const host = path.join(flashDir, p);
    if (data === null) {
      if (!last.has(p)) fs.mkdirSync(host, { recursive: true });
      continue;
    }
    const before = last.get(p);
    if (before && before.equals(data)) continue;
    if (corruptName && !corrupted && path.basename(p) === corruptName && data.length > 0) {
      // fault injection: the flash cell holding this file's last byte goes bad after the write
      data[data.length - 1] ^= 0xff;
      mp.FS.writeFile(p, data);
      corrupted = true;
    }
    fs.mkdirSync(path.dirname(host), { recursive: true });
    fs.writeFileSync(host, data);
  }
  for (const p of last.keys()) {
    if (!now.has(p)) fs.rmSync(path.join(flashDir, p), { recursive: true, force: true });
  }
  last = now;
}

// ---- the board module the ROM's machine.py talks to ----
let resetRequested = false;
const board = {
  reset_cause: parseInt(args["reset-cause"] || "1", 10),
  reset: () => { resetRequested = true; },
  uart_write: (id, hex) => {
    if (uartFd < 0) return;
    try { fs.writeSync(uartFd, Buffer.from(hex, "hex")); } catch (e) { /* board.py gone: the line is dead */ }
  },
  wdt_start: (ms) => { board.wdt_timeout = ms; },
  wdt_feed: () => { board.wdt_feeds += 1; },
  wdt_timeout: 0,
  wdt_feeds: 0,
  main_started: () => { mainRunning = true; },
  main_done: () => { if (mainRunning) { mainRunning = false; friendlyPrompt(true); flush(); } },
};
mp.registerJsModule("_board", board);
loadFlash(flashDir, "/");
last = snapshot("/", new Map());
try { mp.FS.mkdir("/rom"); } catch (e) { /* exists */ }
for (const name of fs.readdirSync(args["rom"])) {
  if (name.endsWith(".py")) mp.FS.writeFile("/rom/" + name, fs.readFileSync(path.join(args["rom"], name)));
}
runInit(`
import os, sys
os.chdir('/')
sys.path[:] = ['', '.frozen', '/rom', '/lib']
import _errfix
import asyncio, _board
_board_tasks = []
_board_create_task = asyncio.create_task
def _board_track(coro):
    t = _board_create_task(coro)
    _board_tasks.append(t)
    return t
asyncio.create_task = _board_track
def _board_run(coro):
    async def _main():
        try:
            await coro
        except BaseException as e:
            if not isinstance(e, asyncio.CancelledError):
                sys.print_exception(e)
        _board.main_done()
    _board.main_started()
    _board_track(_main())
asyncio.run = _board_run
def _board_interrupt():
    for t in _board_tasks:
        try:
            t.cancel()
        except Exception:
            pass
    _board_tasks.clear()
def _board_single(src):
    exec(compile(src, '<stdin>', 'single'), globals())
del os, sys
`);

function runInit(code) {
  try {
    mp.runPython(code);
  } catch (e) {
    fs.writeSync(2, "board bridge init failed: " + (e.message || String(e)) + "\n");
    process.exit(1);
  }
}

// ---- execution ----
let mainRunning = false;
let execCount = 0;

function runSource(code, single) {
  // returns [ok, tracebackText]; Python stdout is already in `out`
  try {
    if (single) {
      mp.globals.set("_board_src", code);
      mp.runPython("_board_single(_board_src)");
    } else {
      mp.runPython(code);
    }
    return [true, ""];
  } catch (e) {
    if (e.name !== "PythonError") return [false, String(e) + "\n"];
    if (e.type === "SystemExit") return [false, "SystemExit"];
    return [false, e.message];
  }
}

function afterExec() {
  syncFlash();
  execCount += 1;
  if (resetRequested) exitWith(EXIT_HARD);
  if (dieAfterExecs >= 0 && execCount >= dieAfterExecs) {
    flush();
    process.exit(EXIT_DIED); // the node loses power / the cable is pulled
  }
}

function exitWith(code) {
  syncFlash();
  flush();
  process.exit(code);
}

function crlf(text) { return text.replace(/\r?\n/g, "\r\n"); }

// ---- REPL state machine ----
let mode = "friendly"; // friendly | raw | paste-head | rawpaste
let line = "";
let block = [];
let rawBuf = [];
let pasteCount = 0;
let pasteHead = [];

function banner() {
  emit("MicroPython v1.27.0 on 2025-12-10; dozor virtual board (WebAssembly) with ESP32 machine simulation\r\n");
  emit('Type "help()" for more information.\r\n');
}
function friendlyPrompt(newline) {
  if (newline) emit("\r\n");
  emit(block.length ? "... " : ">>> ");
}
function enterRaw() {
  mode = "raw";
  rawBuf = [];
  emit("raw REPL; CTRL-B to exit\r\n>");
}

function execRaw(bytes, paste) {
  if (!paste) emit("OK");
  const src = Buffer.from(bytes).toString("utf8");
  const [ok, err] = runSource(src, false);
  if (!ok && err === "SystemExit") {
    emit("\x04\x04");
    if (resetRequested) exitWith(EXIT_HARD);
    emit("MPY: soft reboot\r\n");
    exitWith(EXIT_SOFT_RAW);
  }
  emit("\x04");
  if (!ok) emit(crlf(err));
  emit("\x04>");
  afterExec();
}

function friendlyExec() {
  const src = block.length ? block.join("\n") + "\n" : line;
  block = [];
  line = "";
  if (src.trim() === "") return friendlyPrompt(false);
  const [ok, err] = runSource(src, true);
  if (!ok && err === "SystemExit") {
    if (resetRequested) exitWith(EXIT_HARD);
    emit("MPY: soft reboot\r\n");
    exitWith(EXIT_SOFT_FRIENDLY);
  }
  if (!ok) emit(crlf(err));
  afterExec();
  if (!mainRunning) friendlyPrompt(false);
}

function friendlyChar(c) {
  if (c === 0x01) { emit("\r\n"); line = ""; block = []; return enterRaw(); }
  if (c === 0x02) { emit("\r\n"); banner(); line = ""; block = []; return friendlyPrompt(false); }
  if (c === 0x03) { line = ""; block = []; emit("\r\nKeyboardInterrupt\r\n"); return friendlyPrompt(false); }
  if (c === 0x04) {
    if (line === "" && block.length === 0) {
      emit("\r\nMPY: soft reboot\r\n");
      exitWith(EXIT_SOFT_FRIENDLY);
    }
    return;
  }
  if (c === 0x08 || c === 0x7f) {
    if (line.length) { line = line.slice(0, -1); emit("\b \b"); }
    return;
  }
  if (c === 0x0d) {
    emit("\r\n");
    if (block.length) {
      if (line === "") return friendlyExec();
      block.push(line);
      line = "";
      return friendlyPrompt(false);
    }
    if (line.trimEnd().endsWith(":")) {
      block.push(line);
      line = "";
      return friendlyPrompt(false);
    }
    return friendlyExec();
  }
  if (c === 0x0a) return;
  if (c >= 0x20) { line += String.fromCharCode(c); emitRaw([c]); }
}

function rawChar(c) {
  if (mode === "paste-head") {
    pasteHead.push(c);
    if (pasteHead.length < 2) return;
    if (pasteHead[0] === 0x41 && pasteHead[1] === 0x01) {
      mode = "rawpaste";
      rawBuf = [];
      pasteCount = 0;
      emitRaw([0x52, 0x01, PASTE_WINDOW & 0xff, PASTE_WINDOW >> 8, 0x01]);
    } else {
      mode = "raw";
      emitRaw([0x52, 0x00]);
      for (const b of pasteHead) rawChar(b);
    }
    return;
  }
  if (mode === "rawpaste") {
    if (c === 0x04 || c === 0x03) {
      emit("\x04");
      mode = "raw";
      if (c === 0x03) { emit("\x04KeyboardInterrupt\r\n\x04>"); return; }
      const bytes = rawBuf;
      rawBuf = [];
      return execRaw(bytes, true);
    }
    rawBuf.push(c);
    pasteCount += 1;
    if (pasteCount === PASTE_WINDOW) { pasteCount = 0; emitRaw([0x01]); }
    return;
  }
  if (c === 0x01) { rawBuf = []; emit("\r\n"); return enterRaw(); }
  if (c === 0x02) { mode = "friendly"; rawBuf = []; emit("\r\n"); banner(); return friendlyPrompt(false); }
  if (c === 0x03) { rawBuf = []; return; }
  if (c === 0x05 && rawBuf.length === 0) { mode = "paste-head"; pasteHead = []; return; }
  if (c === 0x04) {
    if (rawBuf.length === 0) {
      emit("OK\r\nMPY: soft reboot\r\n");
      exitWith(EXIT_SOFT_RAW);
    }
    const bytes = rawBuf;
    rawBuf = [];
    return execRaw(bytes, false);
  }
  rawBuf.push(c);
}

function onChar(c) {
  if (mainRunning) {
    // the application owns the board; like a real UART REPL, only Ctrl-C gets through
    if (c === 0x03) {
      mainRunning = false;
      mp.runPython("_board_interrupt()");
      emit("Traceback (most recent call last):\r\n  File \"main.py\", in <module>\r\nKeyboardInterrupt: \r\n");
      banner();
      friendlyPrompt(false);
    }
    return;
  }
  if (mode === "friendly") friendlyChar(c);
  else rawChar(c);
}

process.on("uncaughtException", (e) => {
  // a KeyboardInterrupt or error raised inside the asyncio loop's JS timer
  if (e && e.name === "PythonError") {
    emit(crlf(e.message));
    if (mainRunning) { mainRunning = false; banner(); friendlyPrompt(false); }
    flush();
    return;
  }
  fs.writeSync(2, "board bridge error: " + (e && e.stack ? e.stack : String(e)) + "\n");
  process.exit(1);
});

process.stdin.on("data", (data) => {
  for (const c of data) onChar(c);
  flush();
});
setInterval(flush, 20).unref(); // output printed by background asyncio tasks
process.stdin.on("end", () => { syncFlash(); process.exit(0); });

// ---- boot ----
function runFile(name) {
  let st;
  try { st = mp.FS.stat("/" + name); } catch (e) { return; }
  if (!st) return;
  const [ok, err] = runSource(mp.FS.readFile("/" + name, { encoding: "utf8" }), false);
  if (!ok && err === "SystemExit") { if (resetRequested) exitWith(EXIT_HARD); exitWith(EXIT_SOFT_FRIENDLY); }
  if (!ok) emit(crlf(err));
  syncFlash();
  if (resetRequested) exitWith(EXIT_HARD);
}

runFile("boot.py");
if (mode0 === "raw") {
  enterRaw();
} else {
  runFile("main.py");
  if (!mainRunning) { banner(); friendlyPrompt(false); }
}
flush();
