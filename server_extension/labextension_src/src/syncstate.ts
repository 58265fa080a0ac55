/**
 * What the status bar says about the workspace's S3 copy: pure functions of the model
 * that `GET codepilot/api/sync` returns, so the wording is decided in one place.
 *
 * Students read one of three words, "Saved", "Saving…" or "Not saved"; the why and
 * the numbers (pending changes, the last error, the S3 location) are in the detail.
 */

export interface ISyncError {
  message: string;
  path?: string | null;
  at?: string | null;
}

/** The reply of `GET codepilot/api/sync` (server_extension/storage/engine.py). */
export interface ISyncModel {
  storage: 'local' | 'sync' | 's3' | string;
  state?: string;
  pending: number;
  pending_paths?: string[];
  last_error: ISyncError | null;
  last_success: string | null;
  location?: string;
  unflushed?: string[];
  stalled_since?: string | null;
  watcher_error?: string | null;
}

export type SyncLevel = 'ok' | 'busy' | 'warning' | 'error';

/** stalled: no push finishes; failing: S3 refuses; unwatched: the watcher stopped. */
export type SyncProblem = 'stalled' | 'failing' | 'unwatched';

export const SAVED = 'Saved';
export const SAVING = 'Saving\u2026';
export const NOT_SAVED = 'Not saved';
export const SIGNED_OUT = 'Signed out';

export interface ISyncView {
  /** False in `local` mode: there is no S3 copy to report on. */
  visible: boolean;
  /** Saved, Saving…, Not saved, or Signed out. */
  text: string;
  tooltip: string;
  level: SyncLevel;
  /** Something the student must learn even without looking at the status bar. */
  problem: SyncProblem | null;
  /** The hub's session ended: the detail offers to sign in again. */
  signedOut?: boolean;
}

const BUSY_STATES = new Set(['starting', 'reconciling', 'syncing']);

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

function errorLine(error: ISyncError | null): string {
  if (!error) {
    return '';
  }
  const where = error.path ? ` (${error.path})` : '';
  const when = error.at ? ` at ${error.at}` : '';
  return `Last error${when}${where}: ${error.message}`;
}

function lastSuccessLine(model: ISyncModel): string {
  return model.last_success ? `Last upload at ${model.last_success}.` : '';
}

function lines(...parts: string[]): string {
  return parts.filter(Boolean).join('\n');
}

/** True when the last error is newer than the last success: S3 is failing right now. */
export function isFailing(model: ISyncModel): boolean {
  if (!model.last_error) {
    return false;
  }
  if (model.state === 'retrying') {
    return true;
  }
  if (model.pending === 0) {
    return false;
  }
  const errorAt = model.last_error.at ?? '';
  const successAt = model.last_success ?? '';
  // Both are ISO 8601 UTC strings of one format, so they compare as strings.
  return errorAt >= successAt;
}

export function describeSync(model: ISyncModel): ISyncView {
  const where = model.location ?? 'S3';
  if (model.storage === 'local') {
    return { visible: false, text: '', tooltip: '', level: 'ok', problem: null };
  }
  if (model.storage === 's3') {
    return {
      visible: true,
      text: SAVED,
      tooltip: `Every save goes straight to ${where}.`,
      level: 'ok',
      problem: null
    };
  }
  const pending = model.pending ?? 0;
  const safeOnDisk =
    'Your files are safe on this server\u2019s disk and go up as soon as S3 answers.';
  if (model.state === 'error') {
    return {
      visible: true,
      text: NOT_SAVED,
      tooltip: lines(
        'Changes made in terminals are no longer copied to S3 until the server restarts; ' +
          'saves from the editor still are.',
        model.watcher_error ? `Why: ${model.watcher_error}` : '',
        errorLine(model.last_error)
      ),
      level: 'error',
      problem: 'unwatched'
    };
  }
  if (model.state === 'stalled') {
    const since = model.stalled_since ? ` since ${model.stalled_since}` : ' for a while';
    return {
      visible: true,
      text: NOT_SAVED,
      tooltip: lines(
        `Sync to ${where} has made no progress${since}: ${plural(pending, 'change')} waiting.`,
        safeOnDisk,
        errorLine(model.last_error),
        lastSuccessLine(model)
      ),
      level: 'error',
      problem: 'stalled'
    };
  }
  if (model.state === 'stopped') {
    const left = model.unflushed?.length ?? 0;
    return {
      visible: true,
      text: left ? NOT_SAVED : SAVED,
      tooltip: lines(
        'This server is stopping; sync has ended.',
        left ? `${plural(left, 'file')} will be uploaded at the next start.` : ''
      ),
      level: left ? 'warning' : 'ok',
      problem: null
    };
  }
  if (isFailing(model)) {
    return {
      visible: true,
      text: NOT_SAVED,
      tooltip: lines(
        `${where} is not answering; retrying. ${plural(pending, 'change')} waiting.`,
        safeOnDisk,
        errorLine(model.last_error),
        lastSuccessLine(model)
      ),
      level: 'warning',
      problem: 'failing'
    };
  }
  if (pending > 0) {
    return {
      visible: true,
      text: SAVING,
      tooltip: lines(`${plural(pending, 'change')} on the way to ${where}.`, lastSuccessLine(model)),
      level: 'busy',
      problem: null
    };
  }
  if (model.state && BUSY_STATES.has(model.state)) {
    return {
      visible: true,
      text: SAVING,
      tooltip: lines(`Comparing the workspace with ${where}.`, lastSuccessLine(model)),
      level: 'busy',
      problem: null
    };
  }
  if (model.state === 'idle' || model.state === undefined) {
    return {
      visible: true,
      text: SAVED,
      tooltip: lines(`Every file is saved in ${where}.`, lastSuccessLine(model)),
      level: 'ok',
      problem: null
    };
  }
  return {
    visible: true,
    text: SAVING,
    tooltip: lines(`Sync to ${where}: ${model.state}.`, errorLine(model.last_error)),
    level: 'busy',
    problem: null
  };
}

/** The status bar text when the server itself does not answer. */
export function describeUnreachable(reason: string): ISyncView {
  return {
    visible: true,
    text: NOT_SAVED,
    tooltip: `This server does not answer, so nothing can be saved from this tab: ${reason}`,
    level: 'warning',
    problem: null
  };
}

/** The status bar text when the hub's session ended (`sessionText` says so). */
export function describeSignedOut(sessionText: string): ISyncView {
  return {
    visible: true,
    text: SIGNED_OUT,
    tooltip: sessionText,
    level: 'warning',
    problem: null,
    signedOut: true
  };
}
