/**
 * Hono's bodyLimit answering 413 in the app's `{"error": {"code", "message"}}` shape: the limit every route
 * that reads a whole body puts in front of it.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { errorBody } from "../errors.ts";

export interface BodyLimitAnswer {
  /** default `payload_too_large` (the registry's uploads say `too_large`, as its own refusals do) */
  code?: string;
  /** default: "Request body is over the limit of N bytes" */
  message?: string;
}

export function limitBody(maxSize: number, answer: BodyLimitAnswer = {}): MiddlewareHandler {
  const code = answer.code ?? "payload_too_large";
  const message = answer.message ?? `Request body is over the limit of ${maxSize} bytes`;
  return bodyLimit({ maxSize, onError: (c) => c.json(errorBody(code, message), 413) });
}
