// Every call the dashboard makes goes through here so errors surface in one shape: the server's
// `{error: {code, message}}` becomes an ApiError the panels can show as is.
const KEY_STORAGE = "kestrel-api-key";

export class ApiError extends Error {
  constructor(status, code, message, problems = []) {
    super(message);
    this.status = status;
    this.code = code;
    // Dataset refusals list every offending file: [{file, line?, message}].
    this.problems = problems;
  }
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) ?? "";
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const sent = new Headers(headers);
  const key = apiKey();
  if (key) sent.set("Authorization", `Bearer ${key}`);
  const res = await fetch(path, { method, body, headers: sent });
  const type = res.headers.get("content-type") ?? "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const error = typeof data === "object" && data !== null ? data.error : undefined;
    throw new ApiError(
      res.status,
      error?.code ?? `http_${res.status}`,
      error?.message ?? res.statusText,
      error?.problems,
    );
  }
  return data;
}

export function describeError(err) {
  return err instanceof ApiError ? `${err.message} (${err.status} ${err.code})` : String(err?.message ?? err);
}
