/**
 * The time map's index file, without a server: where it goes (outside the archive, per archive),
 * how it is written (temp file, fsync, rename, fsync of every directory whose entry changed), and
 * that a file the reader cannot use is recorded as a problem instead of stopping the build.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { archiveTimeMap, defaultTimeMapFile } from "../../src/archive/time-map.js";
import { syntheticName, syntheticSegment } from "./synthetic-wal.js";

test("the index lives outside the archive, one per archive, under $STATE_DIRECTORY or ~/.local/state/pgwal", async () => {
  const a = await defaultTimeMapFile("/srv/a", { STATE_DIRECTORY: "/var/lib/pgwal-state:/other" });
  const b = await defaultTimeMapFile("/srv/b", { STATE_DIRECTORY: "/var/lib/pgwal-state" });
  assert.match(a, /^\/var\/lib\/pgwal-state\/timemap-[0-9a-f]{16}\.json$/);
  assert.notEqual(a, b);
  const home = await defaultTimeMapFile("/srv/a", { XDG_STATE_HOME: "/home/u/.state" });
  assert.match(home, /^\/home\/u\/\.state\/pgwal\/timemap-/);
});

test("the index is written atomically: new directories, then the rename, are fsynced", async () => {
  const work = await mkdtemp(join(tmpdir(), "pgwal-timemap-store-"));
  try {
    const archive = join(work, "archive");
    await mkdir(archive);
    // Synthetic segments have page headers but no records: a complete one is a problem, not a crash.
    await writeFile(join(archive, syntheticName(3n)), syntheticSegment(3n));
    await writeFile(join(archive, `${syntheticName(4n)}.partial`), syntheticSegment(4n, 2));
    const indexFile = join(work, "state", "deep", "timemap.json");
    const synced: string[] = [];
    const fsyncDirectory = async (directory: string) => {
      synced.push(directory);
    };
    const result = await archiveTimeMap(archive, { indexFile, fsyncDirectory });
    assert.equal(result.saveError, null);
    assert.equal(result.filesRead, 2);
    assert.deepEqual(synced, [join(work, "state"), work, join(work, "state", "deep")]);
    assert.deepEqual(await readdir(join(work, "state", "deep")), ["timemap.json"], "no temp file left");
    assert.deepEqual((await readdir(archive)).sort(), [syntheticName(3n), `${syntheticName(4n)}.partial`]);
    const [complete, partial] = result.map.segments;
    assert.equal(complete?.partial, false);
    assert.notEqual(complete?.problem, null);
    assert.equal(partial?.partial, true);
    synced.length = 0;
    const again = await archiveTimeMap(archive, { indexFile, fsyncDirectory });
    assert.equal(again.filesRead, 0);
    assert.deepEqual(synced, [], "nothing read, nothing written");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
