/**
 * What a tab says when its project's server has stopped: once, with Restart (the hub's
 * start page of this project) and Home (the hub's list of projects).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';

export interface IHubLinks {
  /** The project's name as the hub's home lists it ("default" for the unnamed one). */
  project: string;
  restart: string;
  home: string;
}

/** Where Restart and Home go, from the page config JupyterHub gives a server's page;
 * null outside JupyterHub. */
export function hubLinks(): IHubLinks | null {
  const prefix = PageConfig.getOption('hubPrefix');
  if (!prefix) {
    return null;
  }
  const host = PageConfig.getOption('hubHost'); // "" when the hub shares this origin
  const user = PageConfig.getOption('hubUser');
  const server = PageConfig.getOption('hubServerName');
  const spawn = ['spawn', encodeURIComponent(user), encodeURIComponent(server)];
  return {
    project: server || 'default',
    restart: host + URLExt.join(prefix, ...spawn.filter(Boolean)),
    home: host + URLExt.join(prefix, 'home')
  };
}

const RESTART = 'Restart';
const HOME = 'Home';

/** Shows the message; Restart or Home leave the tab, closing it keeps the tab as it is
 * (quiet, its editors readable) to copy what was not saved. */
export async function tellStopped(links: IHubLinks): Promise<void> {
  const result = await showDialog({
    title: `This project (${links.project}) was stopped`,
    body:
      'Its server is no longer running: a teacher, the idle culler or the hub stopped ' +
      'it. Saved files are kept. Restart starts it again; Home lists your projects.',
    buttons: [Dialog.cancelButton({ label: HOME }), Dialog.okButton({ label: RESTART })]
  });
  if (result.button.label === RESTART) {
    window.location.assign(links.restart);
  } else if (result.button.label === HOME) {
    window.location.assign(links.home);
  }
}
