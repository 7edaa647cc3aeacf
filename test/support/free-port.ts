/** Finding a TCP port on 127.0.0.1 that nothing listens on right now. */
import { createServer } from "node:net";

/**
 * Asks the kernel for a free port by listening on port 0 of 127.0.0.1 and closing again. Another process
 * may take the port before the caller binds it; callers retry their start on "address in use".
 */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("could not read the port the kernel chose"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
