/**
 * The power-cut file system loses exactly what a power cut may lose: file content not fsynced, and
 * names created, renamed or removed without an fsync of their directory.
 */
import assert from "node:assert/strict";
import { constants } from "node:fs";
import { open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { PowerCutFs } from "../support/power-cut-fs.js";

let fs: PowerCutFs;
before(async () => {
  fs = await PowerCutFs.start("power-cut-selftest");
});
after(async () => fs?.destroy());

const at = (name: string) => join(fs.mountPoint, name);

async function writeFileAndSync(name: string, content: string, sync: "fsync" | "fdatasync" | "none") {
  const handle = await open(at(name), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  await handle.write(content);
  if (sync === "fsync") await handle.sync();
  if (sync === "fdatasync") await handle.datasync();
  await handle.close();
}

async function syncDirectory(): Promise<void> {
  const handle = await open(fs.mountPoint, constants.O_RDONLY);
  await handle.sync();
  await handle.close();
}

async function appendUnsynced(name: string, content: string): Promise<void> {
  const handle = await open(at(name), constants.O_WRONLY | constants.O_APPEND);
  await handle.write(content);
  await handle.close();
}

/** Every name on the mount with its content. */
async function contents(): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const name of (await readdir(fs.mountPoint)).sort()) result[name] = await readFile(at(name), "utf8");
  return result;
}

async function clear(): Promise<void> {
  for (const name of await readdir(fs.mountPoint)) await unlink(at(name));
  await syncDirectory();
}

test("before a cut, the mount shows every write", async () => {
  await clear();
  await writeFileAndSync("a", "one", "none");
  await appendUnsynced("a", "two");
  assert.deepEqual(await contents(), { a: "onetwo" });
  await fs.cutPowerAndRemount();
  assert.deepEqual(await contents(), {});
});

test("a write without fsync is lost; fsync and fdatasync keep it", async () => {
  await clear();
  await writeFileAndSync("synced", "kept", "fsync");
  await writeFileAndSync("datasynced", "kept too", "fdatasync");
  await writeFileAndSync("unsynced", "lost", "none");
  await syncDirectory();
  await appendUnsynced("synced", " and lost");
  await fs.cutPowerAndRemount();
  // A durable name whose file was never fsynced comes back empty.
  assert.deepEqual(await contents(), { datasynced: "kept too", synced: "kept", unsynced: "" });
});

test("a new file whose directory was not fsynced disappears, even when the file was", async () => {
  await clear();
  await writeFileAndSync("old", "old", "fsync");
  await syncDirectory();
  await writeFileAndSync("new", "new", "fsync");
  await fs.cutPowerAndRemount();
  assert.deepEqual(await contents(), { old: "old" });
});

test("a rename without a directory fsync reverts to the old name, with the file's fsynced content", async () => {
  await clear();
  await writeFileAndSync("name.partial", "first", "fsync");
  await syncDirectory();
  const handle = await open(at("name.partial"), constants.O_WRONLY | constants.O_APPEND);
  await handle.write(" second");
  await handle.sync();
  await handle.close();
  await rename(at("name.partial"), at("name"));
  assert.deepEqual(await contents(), { name: "first second" });
  await fs.cutPowerAndRemount();
  assert.deepEqual(await contents(), { "name.partial": "first second" });
});

test("after fsync of file and directory, a rename and its content survive", async () => {
  await clear();
  await writeFileAndSync("target", "replaced", "fsync");
  await writeFileAndSync("source", "replacement", "fsync");
  await syncDirectory();
  await rename(at("source"), at("target"));
  await syncDirectory();
  await fs.cutPowerAndRemount();
  assert.deepEqual(await contents(), { target: "replacement" });
});

test("an unlink without a directory fsync comes back", async () => {
  await clear();
  await writeFileAndSync("doomed", "still here", "fsync");
  await syncDirectory();
  await unlink(at("doomed"));
  assert.deepEqual(await contents(), {});
  await fs.cutPowerAndRemount();
  assert.deepEqual(await contents(), { doomed: "still here" });
});

test("a truncation (O_TRUNC) not fsynced is undone; a shorter rewrite fsynced is kept", async () => {
  await clear();
  await writeFileAndSync("stream", "a long durable stream", "fsync");
  await syncDirectory();
  await writeFileAndSync("stream", "short", "none");
  assert.deepEqual(await contents(), { stream: "short" });
  await fs.cutPowerAndRemount();
  assert.deepEqual(await contents(), { stream: "a long durable stream" });
  await writeFileAndSync("stream", "short", "fsync");
  await fs.cutPowerAndRemount();
  assert.deepEqual(await contents(), { stream: "short" });
});

test("the durable directory holds exactly the durable state", async () => {
  await clear();
  await writeFileAndSync("durable", "yes", "fsync");
  await syncDirectory();
  await writeFileAndSync("pending", "no", "fsync");
  await fs.cutPower();
  assert.deepEqual((await readdir(fs.durableDir)).sort(), ["durable"]);
  assert.equal(await readFile(join(fs.durableDir, "durable"), "utf8"), "yes");
  await fs.mount();
});
