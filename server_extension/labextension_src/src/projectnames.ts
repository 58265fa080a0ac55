/**
 * What the project features say, kept apart from the DOM: the tab title, the status bar
 * words, the line a teacher sees, what a delete does, where a project opens.
 */
import { URLExt } from '@jupyterlab/coreutils';

export const PROJECT_PATH = 'codepilot/api/project';
export const PROJECTS_PATH = 'codepilot/api/projects';

/** `GET codepilot/api/project`: this project, its owner and who is looking. */
export interface IProjectInfo {
  owner: string;
  /** The hub's server name: "" for the default project. */
  name: string;
  /** The name people see: "default" for the default project. */
  label: string;
  viewer: string;
  viewer_is_owner: boolean;
  may_manage: boolean;
  /** Where workspaces live: "local", "sync" or "s3". */
  storage: string;
  limit: number;
}

export type ProjectState = 'running' | 'starting' | 'stopping' | 'stopped';

/** One row of `GET codepilot/api/projects`. */
export interface IProjectRow {
  name: string;
  label: string;
  state: ProjectState;
  /** The server's URL as the hub gives it (its owner's host when subdomains are on). */
  url: string;
  current: boolean;
  last_activity: string | null;
}

export interface IProjectList {
  projects: IProjectRow[];
  may_manage: boolean;
  limit: number;
}

export const TITLE_SUFFIX = 'Code Pilot';
const SEPARATOR = ' — ';

/**
 * The tab title: JupyterLab's own (which names the active document, if any) with the
 * project and its owner in place of the app's name: "notes.py — web — maya — Code Pilot".
 *
 * JupyterLab writes "<appName>" (no document) or "<document>[ (n)] - <appName>"; a title
 * already ours is returned as it is, so rewriting it never loops.
 */
export function projectTitle(labTitle: string, info: IProjectInfo, appName: string): string {
  const ours = [info.label, info.owner, TITLE_SUFFIX].join(SEPARATOR);
  if (labTitle.endsWith(ours)) {
    return labTitle;
  }
  let documentPart = '';
  const cut = labTitle.lastIndexOf(' - ');
  if (cut > 0 && !labTitle.startsWith(appName)) {
    documentPart = labTitle.slice(0, cut);
  }
  return documentPart ? documentPart + SEPARATOR + ours : ours;
}

/** The status bar item's words. */
export function projectStatusText(info: IProjectInfo): string {
  return info.viewer_is_owner ? `Project: ${info.label}` : `${info.owner}'s project: ${info.label}`;
}

/** The line shown at the top when someone other than the owner (a teacher, an admin)
 * opened the workspace; null for the owner. */
export function visitorLine(info: IProjectInfo): string | null {
  if (info.viewer_is_owner) {
    return null;
  }
  const who = info.viewer ? ` You are signed in as ${info.viewer}.` : '';
  return `You are in ${info.owner}'s workspace (project ${info.label}).${who}`;
}

export const STATE_WORDS: Record<ProjectState, string> = {
  running: 'running',
  starting: 'starting…',
  stopping: 'stopping…',
  stopped: 'stopped'
};

/** What deleting a project does to its files, plainly (the spawner removes the
 * workspace; an S3 copy is kept, and a new project of that name starts from it). */
export function deleteConsequences(label: string, storage: string): string {
  const removed =
    `Deleting ${label} stops it and removes it from your projects. Its files on the ` +
    'server are deleted.';
  if (storage === 'local') {
    return `${removed} They are not kept anywhere else: this cannot be undone.`;
  }
  return (
    `${removed} The copy in the class's storage (S3) is kept: a new project named ` +
    `${label} would start with those files again. Ask an admin to remove that copy for good.`
  );
}

/** Where a running project opens: JupyterLab on its own server (its owner's host). */
export function projectOpenUrl(row: IProjectRow): string {
  return URLExt.join(row.url, 'lab');
}
