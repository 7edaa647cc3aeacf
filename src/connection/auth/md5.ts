/**
 * The response to AuthenticationMD5Password: "md5" + md5hex(md5hex(password + user) + salt), where the
 * inner hex digest is hashed as ASCII text followed by the 4 raw salt bytes from the server.
 */
import { createHash } from "node:crypto";

function md5Hex(...parts: (string | Buffer)[]): string {
  const hash = createHash("md5");
  for (const part of parts) hash.update(part);
  return hash.digest("hex");
}

export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  // Strings are hashed as UTF-8, which is what libpq sends for a UTF-8 client.
  return `md5${md5Hex(md5Hex(password, user), salt)}`;
}
