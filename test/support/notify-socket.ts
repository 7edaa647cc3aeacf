import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * A unix datagram socket like systemd's notify socket, served by python3 (Node cannot bind one).
 * Every datagram becomes a line of `messages`, its newlines shown as "|". The socket is writable by
 * any user, so a receiver running as another OS user can notify it. The caller kills `child`.
 */
export async function startNotifySocket(path: string): Promise<{ messages: string[]; child: ChildProcess }> {
  const script = [
    "import socket, sys, os",
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
    "s.bind(sys.argv[1])",
    "os.chmod(sys.argv[1], 0o666)",
    "print('LISTENING', flush=True)",
    "while True:",
    "    data = s.recv(65536)",
    "    print(data.decode().replace('\\n', '|'), flush=True)",
  ].join("\n");
  const child = spawn("python3", ["-c", script, path], { stdio: ["ignore", "pipe", "inherit"] });
  const messages: string[] = [];
  let buffered = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    messages.push(...lines);
  });
  for (let i = 0; i < 100 && !messages.includes("LISTENING"); i++) await sleep(50);
  if (!messages.includes("LISTENING")) child.kill();
  assert.ok(messages.includes("LISTENING"), "python3 notify socket helper started");
  return { messages, child };
}
