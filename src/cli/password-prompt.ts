/**
 * Password prompt on the controlling terminal, without echo, like libpq's simple_prompt: it reads
 * /dev/tty (not stdin, which may be a pipe or closed) and writes the prompt there too. Without a
 * terminal there is no prompt at all: services and cron jobs must use PGPASSWORD or ~/.pgpass.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import tty from "node:tty";

/** A terminal-like input: a readable stream that may support raw mode (no echo, no line editing). */
export interface PromptInput {
  on(event: "data", listener: (chunk: Buffer | string) => void): unknown;
  on(event: "end" | "close", listener: () => void): unknown;
  removeAllListeners(): unknown;
  resume(): unknown;
  pause(): unknown;
  setRawMode?(mode: boolean): unknown;
}

export interface PromptStreams {
  input: PromptInput;
  write(text: string): void;
}

/** What a prompt produced: the password, or "cancelled" on Ctrl-C. */
export type PromptResult = { kind: "password"; password: string } | { kind: "cancelled" };

const CTRL_C = "\u0003";
const CTRL_D = "\u0004";
const CTRL_U = "\u0015";
const BACKSPACE = "\b";
const DELETE = "\u007f";

/**
 * Reads one line without echo from `streams`. Enter (or Ctrl-D, or end of input) finishes it;
 * Backspace/Delete erase a character, Ctrl-U the whole line, Ctrl-C cancels.
 */
export function readPassword(streams: PromptStreams, promptText = "Password: "): Promise<PromptResult> {
  const { input } = streams;
  return new Promise((resolve) => {
    let typed: string[] = [];
    let done = false;
    const finish = (result: PromptResult) => {
      if (done) return;
      done = true;
      input.removeAllListeners();
      input.setRawMode?.(false);
      input.pause();
      // Raw mode swallowed the user's Enter: end the prompt line ourselves.
      streams.write("\n");
      resolve(result);
    };
    input.setRawMode?.(true);
    streams.write(promptText);
    input.on("data", (chunk) => {
      for (const char of typeof chunk === "string" ? chunk : chunk.toString("utf8")) {
        if (char === "\r" || char === "\n" || char === CTRL_D)
          return finish({ kind: "password", password: typed.join("") });
        if (char === CTRL_C) return finish({ kind: "cancelled" });
        if (char === BACKSPACE || char === DELETE) typed.pop();
        else if (char === CTRL_U) typed = [];
        else if (char >= " ") typed.push(char);
      }
    });
    input.on("end", () => finish({ kind: "password", password: typed.join("") }));
    input.on("close", () => finish({ kind: "password", password: typed.join("") }));
    input.resume();
  });
}

/**
 * Prompts on the controlling terminal. Returns undefined when there is none (no /dev/tty, or it
 * is not a terminal), so the caller connects without a password and reports the server's refusal.
 */
export async function promptPasswordOnTerminal(promptText = "Password: "): Promise<PromptResult | undefined> {
  let fd: number;
  try {
    fd = openSync("/dev/tty", "r+");
  } catch {
    return undefined;
  }
  if (!tty.isatty(fd)) {
    closeSync(fd);
    return undefined;
  }
  const input = new tty.ReadStream(fd);
  try {
    return await readPassword({ input, write: (text) => writeSync(fd, text) }, promptText);
  } finally {
    // Destroying the stream closes the descriptor.
    input.destroy();
  }
}
