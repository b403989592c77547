/**
 * The pieces every route module's OpenAPI declarations share: a JSON response, an error response in the app's
 * `{"error": {"code", "message"}}` shape, and the bearer security scheme and auth answers of the mutating
 * routes.
 * @module
 */
import type { OpenAPIHono, z } from "@hono/zod-openapi";
import { ErrorSchema } from "./schemas.ts";

/** A response whose body is JSON of `schema`. */
export const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** An error response in the app's shape (DeepStack and KServe v2 routes declare their families' shapes). */
export const error = (description: string) => json(ErrorSchema, description);

/** The answers of requireMutationAuth (middleware/auth.ts) that every mutating route declares. */
export const MUTATION_AUTH_ERRORS = {
  401: error("Missing or wrong API key"),
  403: error("No API key configured and the client is not on loopback"),
};

/** A route's `security`: `Authorization: Bearer <key>` (the scheme {@link registerBearerScheme} declares). */
export const BEARER_SECURITY = [{ bearerAuth: [] }];

/** Declares the `bearerAuth` scheme in the OpenAPI document, once per app. */
export function registerBearerScheme(app: OpenAPIHono): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer" });
}
