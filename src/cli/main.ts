/**
 * Entry point of the `pgwal` command. Started under the name `pg_receivewal` (a symlink), it is
 * `pgwal receive` with pg_receivewal's program name in every message, so tools that call
 * pg_receivewal get the same interface, messages and exit codes.
 */
import path from "node:path";
import type { CommandIo } from "./command-io.js";
import { reportFatalError, usageErrorLines } from "./errors-to-exit.js";
import { ExitCode, type ExitCodeValue } from "./exit-codes.js";
import { receiveCommandName } from "./help-text.js";
import { parseReceiveArgs } from "./options.js";
import { versionLine } from "./version.js";

export const DROP_IN_NAME = "pg_receivewal";

/**
 * The program name from the script path. Node keeps a symlink's own name in process.argv[1]
 * (only import.meta.url is resolved), which is what makes the pg_receivewal symlink work.
 */
export function programNameFromScript(scriptPath: string | undefined): string {
  const base = scriptPath === undefined ? "" : path.basename(scriptPath);
  return base === DROP_IN_NAME || base === `${DROP_IN_NAME}.js` ? DROP_IN_NAME : "pgwal";
}

export type MainIo = CommandIo;

const defaultIo = (): MainIo => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  stderrIsTerminal: process.stderr.isTTY === true,
});

/** Runs the CLI for `argv` as in process.argv (node, script, args…); resolves to the exit code. */
export async function main(
  argv: readonly string[] = process.argv,
  io: MainIo = defaultIo(),
): Promise<number> {
  const programName = programNameFromScript(argv[1]);
  const args = argv.slice(2);
  if (programName === DROP_IN_NAME) return receive(args, programName, io);
  if (args[0] === "receive") return receive(args.slice(1), programName, io);
  // The archive commands load only what they use: restore runs once per WAL file during recovery.
  if (args[0] === "restore") {
    const { runRestoreCommand } = await import("./restore-command.js");
    return runRestoreCommand(args.slice(1), programName, io);
  }
  if (args[0] === "verify") {
    const { runVerifyCommand } = await import("./verify-command.js");
    return runVerifyCommand(args.slice(1), programName, io);
  }
  if (args[0] === "status") {
    const { runStatusCommand } = await import("./status-command.js");
    return runStatusCommand(args.slice(1), programName, io);
  }
  if (args[0] === "cleanup") {
    const { runCleanupCommand } = await import("./cleanup-command.js");
    return runCleanupCommand(args.slice(1), programName, io);
  }
  return topLevel(args, programName, io);
}

async function receive(args: readonly string[], programName: string, io: MainIo): Promise<ExitCodeValue> {
  const outcome = parseReceiveArgs(args, { programName, env: io.env });
  switch (outcome.kind) {
    case "help":
      io.stdout(outcome.text);
      return outcome.exitCode;
    case "version":
      io.stdout(`${outcome.text}\n`);
      return outcome.exitCode;
    case "usage-error":
      writeLines(
        io.stderr,
        usageErrorLines(programName, receiveCommandName(programName), outcome.message, outcome.showHint),
      );
      return outcome.exitCode;
    case "run":
      break;
  }
  // Loaded only now: --help, --version and usage errors stay fast (no receiver, no pino).
  const [
    { chooseLogFormat, chooseLogLevel, createCliLogger },
    { runReceiveCommand },
    { promptPasswordOnTerminal },
  ] = await Promise.all([
    import("./logging.js"),
    import("./receive-command.js"),
    import("./password-prompt.js"),
  ]);
  const options = outcome.args;
  const level = chooseLogLevel(options.verbose, options.logLevel);
  const format = chooseLogFormat(options.logFormat, io.stderrIsTerminal);
  const logger = await createCliLogger({ programName, level, format, colorize: io.stderrIsTerminal });
  try {
    return await runReceiveCommand(options, {
      programName,
      env: io.env,
      logger,
      askPassword: () => promptPasswordOnTerminal(),
      // The catch-up line is for people watching a terminal; JSON logs are for machines.
      progressOutput: io.stderrIsTerminal && format === "pretty" ? io.stderr : undefined,
    });
  } catch (error) {
    const report = reportFatalError(error, {
      programName,
      showStack: level === "debug" || level === "trace",
    });
    // JSON logs get a structured line for shippers; the plain line below is for scripts and people.
    if (format === "json") logger.fatal(report.fields, report.message);
    writeLines(io.stderr, report.lines);
    return report.exitCode;
  }
}

/** `pgwal` without the receive command: list the commands, or the version. */
async function topLevel(args: readonly string[], programName: string, io: MainIo): Promise<ExitCodeValue> {
  const { default: yargs } = await import("yargs");
  let failure: string | undefined;
  let output = "";
  const parser = yargs([...args])
    .scriptName(programName)
    .usage(`Usage: ${programName} <command> [options]`)
    .command(
      "receive",
      `stream WAL into a directory (drop-in for pg_receivewal; see "${programName} receive --help")`,
    )
    .command("restore", "restore_command: copy one WAL file from the archive (restore %f %p)")
    .command("verify", "check every file of an archive (verify DIR)")
    .command("status", "show what an archive holds and how far behind a server it is (status DIR)")
    .command("cleanup", "remove WAL an archive no longer needs (cleanup DIR --before WALFILE | --keep 7d)")
    .demandCommand(1, "no command given")
    .strict()
    .help("help")
    .alias("help", "?")
    .version("version", "show the version", versionLine(programName))
    .alias("version", "V")
    .epilog(
      `Started as ${DROP_IN_NAME} (e.g. through a symlink), ${programName} behaves as "${programName} receive".`,
    )
    .wrap(100)
    .exitProcess(false)
    .fail((message) => {
      failure = message;
    });
  await parser.parseAsync([...args], {}, (_error, _argv, text) => {
    output = text;
  });
  if (failure !== undefined) {
    writeLines(
      io.stderr,
      usageErrorLines(programName, programName, describeTopLevelFailure(failure, args), true),
    );
    return ExitCode.Failure;
  }
  if (output) io.stdout(`${output}\n`);
  return ExitCode.Success;
}

/** yargs says "Unknown argument: x" for both a stray option and an unknown command; say which. */
function describeTopLevelFailure(message: string, args: readonly string[]): string {
  const unknown = /^Unknown arguments?: ([^,]+)/.exec(message)?.[1];
  if (unknown === undefined) return message;
  const asOption = args.find(
    (arg) => arg === `--${unknown}` || arg.startsWith(`--${unknown}=`) || arg === `-${unknown}`,
  );
  return asOption === undefined ? `unknown command "${unknown}"` : `unrecognized option '${asOption}'`;
}

function writeLines(write: (text: string) => void, lines: readonly string[]): void {
  write(lines.map((line) => `${line}\n`).join(""));
}
