/**
 * The status bar item "Python language server stopped: <why>", shown once the server gave
 * up restarting a language server that kept crashing (it then closes the editors'
 * connection to it); the editor works on without completion and underlines.
 *
 * Nothing polls: JupyterLab's LSP connection says when it closed unexpectedly, and only
 * then is `GET codepilot/api/language-servers` asked why; a connection made again (a
 * page opened afresh starts the language server) asks again, which clears the item.
 */
import { ILSPConnection, ILSPDocumentConnectionManager } from '@jupyterlab/lsp';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { LANGUAGE_SERVERS_PATH, requestJSON } from './api';

interface ILanguageServersModel {
  /** Language server name -> what the status bar says of it. */
  stopped: Record<string, string>;
}

export class LanguageServerStatusWidget extends Widget {
  private readonly _activeChanged = new Signal<this, void>(this);
  private readonly watched = new WeakSet<ILSPConnection>();

  constructor(
    connections: ILSPDocumentConnectionManager,
    private readonly settings: ServerConnection.ISettings
  ) {
    super();
    this.addClass('cp-LanguageServerStatus');
    connections.connected.connect((_, { connection }) => {
      if (!this.watched.has(connection)) {
        this.watched.add(connection);
        connection.closeSignal.connect((_, closedByEditor) => {
          if (!closedByEditor) {
            void this.refresh();
          }
        });
      }
      void this.refresh();
    });
  }

  get isActive(): boolean {
    return this.node.textContent !== '';
  }

  get activeChanged(): ISignal<this, void> {
    return this._activeChanged;
  }

  async refresh(): Promise<void> {
    let text = '';
    try {
      const model = await requestJSON<ILanguageServersModel>(
        LANGUAGE_SERVERS_PATH,
        {},
        this.settings
      );
      text = Object.values(model.stopped).join(' · ');
    } catch {
      text = ''; // the server itself is gone: other items say so
    }
    if (text !== this.node.textContent) {
      this.node.textContent = text;
      this.node.title = text;
      this._activeChanged.emit();
    }
  }
}
