/** What a command may touch of the process: output streams, the environment, whether stderr is a terminal. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  stderrIsTerminal: boolean;
}
