/** Why a registry operation was refused; the API maps `code` to an HTTP status. */
export type RegistryErrorCode =
  | "not_found"
  | "conflict"
  | "invalid_model"
  | "too_large"
  | "invalid_name"
  /** A fleet registry could not reach its shared state (NATS down): nothing changed. */
  | "unavailable";

export class RegistryError extends Error {
  constructor(readonly code: RegistryErrorCode, message: string) {
    super(message);
    this.name = "RegistryError";
  }
}
