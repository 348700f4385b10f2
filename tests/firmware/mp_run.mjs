// Run a MicroPython snippet under the real MicroPython WebAssembly interpreter (npm package
// @micropython/micropython-webassembly-pyscript), with host folders copied into its filesystem.
// usage: node mp_run.mjs NODE_MODULES_DIR CODE_FILE DIR [DIR ...]   (files of each DIR land in "/")
// Exit 0 on success; 1 with the MicroPython traceback on stderr when the snippet raised.
import fs from "node:fs";
import path from "node:path";

const [nodeModules, codeFile, ...dirs] = process.argv.slice(2);
const { loadMicroPython } = await import(
  path.resolve(nodeModules, "@micropython/micropython-webassembly-pyscript/micropython.mjs"));
const mp = await loadMicroPython({
  heapsize: 16 * 1024 * 1024,
  linebuffer: false,
  stdout: (d) => process.stdout.write(Buffer.from(d)),
  stderr: (d) => process.stderr.write(Buffer.from(d)),
});

function copyIn(hostDir, mpDir) {
  for (const name of fs.readdirSync(hostDir)) {
    const host = path.join(hostDir, name);
    const target = mpDir === "/" ? "/" + name : mpDir + "/" + name;
    if (fs.statSync(host).isDirectory()) {
      if (name === "__pycache__") continue;
      try { mp.FS.mkdir(target); } catch (e) { /* exists */ }
      copyIn(host, target);
    } else {
      mp.FS.writeFile(target, fs.readFileSync(host));
    }
  }
}
for (const d of dirs) copyIn(d, "/");
const code = fs.readFileSync(codeFile, "utf8");
try {
  mp.runPython("import os, sys\nos.chdir('/')\nsys.path.insert(0, '/')\n");
  await mp.runPythonAsync(code);
  process.exit(0);
} catch (e) {
  if (e.name !== "PythonError") throw e;
  process.stderr.write(e.message);
  process.exit(1);
}
