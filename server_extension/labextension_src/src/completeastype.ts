/**
 * Completion as you type in every file editor, not only in those open when the completer's
 * settings arrived.
 *
 * JupyterLab's completion manager applies its `autoCompletion` setting to the completer
 * handlers that exist at that moment; a handler it makes later, for a file opened after
 * JupyterLab started (`lab/tree/app.py` in a new workspace, a double click in the file
 * browser), starts with continuous hinting off, and nothing turns it on until the
 * settings change again: typing `os.pa` then asks no provider and shows no list.
 */
import { CompletionProviderManager, ICompletionProviderManager } from '@jupyterlab/completer';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

export const COMPLETER_SETTINGS = '@jupyterlab/completer-extension:manager';

/**
 * Apply the `autoCompletion` setting to every completer handler again once a file editor
 * was added and its handler made: the editor extension makes it when the tracker adds the
 * editor, within the same task (its steps only await promises already settled), so a
 * timeout runs after it. Editors added before `restored` need nothing: the settings are
 * read after it, and applied to their handlers then.
 */
export function keepAutoCompletion(
  restored: Promise<void>,
  manager: ICompletionProviderManager,
  editors: IEditorTracker,
  settings: ISettingRegistry
): void {
  // The token names an interface; the class that JupyterLab provides has the setter.
  if (!(manager instanceof CompletionProviderManager)) {
    return;
  }
  const apply = async () => {
    const values = await settings.load(COMPLETER_SETTINGS);
    manager.setContinuousHinting(values.composite.autoCompletion === true);
  };
  // After the completer extension's own wait for `restored`, which makes its settings
  // loadable (it was activated first: this plugin requires its manager).
  void restored.then(() =>
    editors.widgetAdded.connect(() => {
      setTimeout(() => {
        apply().catch(error => console.warn('Code Pilot: completer settings', error));
      }, 0);
    })
  );
}
