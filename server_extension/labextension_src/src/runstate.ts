/**
 * The reply of `GET codepilot/api/run` (server_extension/run/handlers.py) and what the
 * Run panel and status bar make of it, apart from the DOM.
 */

export type RunState = 'running' | 'starting' | 'stopped' | 'crashed';

export interface IRunDetails {
  number: number;
  command: string;
  source: string;
  pid: number;
  started: string;
  ended: string | null;
  exit_code: number | null;
  signal: number | null;
  tail: string | null;
}

export interface IRunNext {
  kind: 'command' | 'problem' | 'missing';
  command?: string;
  source?: string;
  message?: string;
  guess?: string;
  config?: string;
}

export interface IRunModel {
  state: RunState;
  label: string;
  terminal: string | null;
  port: number;
  listening_port: number | null;
  run: IRunDetails | null;
  problem: { message: string } | null;
  next: IRunNext;
}

/** Whether Run would start something: false while a run is alive. */
export function canRun(model: IRunModel | null): boolean {
  return model === null || model.terminal === null;
}

/** The line above the output: what runs, or why nothing can. */
export function runHeadline(model: IRunModel): string {
  if (model.terminal !== null && model.run) {
    return `${model.label}: ${model.run.command}`;
  }
  if (model.next.kind === 'problem' || model.next.kind === 'missing') {
    return model.next.message ?? '';
  }
  if (model.problem) {
    return model.problem.message;
  }
  const last = model.run ? ` (${model.label})` : '';
  return `Run starts: ${model.next.command}${last}`;
}
