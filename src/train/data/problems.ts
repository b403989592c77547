/**
 * Everything wrong with an uploaded dataset, collected in one pass so the HTTP layer can answer one 400 that lists
 * every offending file instead of making the user fix them one round trip at a time.
 */

/** One problem: the file (relative to the dataset root or archive), the 1-based line for label files, and why. */
export interface DatasetProblem {
  file: string;
  line?: number;
  message: string;
}

/** How many problems the error message spells out; `problems` always holds all of them. */
const MESSAGE_PROBLEMS = 20;

export class DatasetError extends Error {
  constructor(readonly problems: readonly DatasetProblem[]) {
    const shown = problems.slice(0, MESSAGE_PROBLEMS).map(formatProblem).join("; ");
    const more = problems.length > MESSAGE_PROBLEMS ? `; and ${problems.length - MESSAGE_PROBLEMS} more` : "";
    super(`Invalid dataset (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${shown}${more}`);
    this.name = "DatasetError";
  }
}

export function formatProblem(p: DatasetProblem): string {
  return `${p.file}${p.line === undefined ? "" : `:${p.line}`}: ${p.message}`;
}
