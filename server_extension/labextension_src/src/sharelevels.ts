/**
 * The preview's share levels as a student reads them: pure data and functions of the
 * model that `GET codepilot/api/preview` returns.
 */

export type ShareLevel = 'owner' | 'authenticated' | 'public';

/** The reply of `GET` and `PUT codepilot/api/preview`. */
export interface IPreviewModel {
  url: string;
  share: ShareLevel | string;
  allowed: string[];
}

export interface IShareLevelInfo {
  level: ShareLevel;
  /** A word or two, for the status bar. */
  short: string;
  /** The option's label: the same words as the class page's (SHARE_WORDS in Python). */
  label: string;
  /** Who gets in, in a sentence. */
  explanation: string;
}

export const SHARE_LEVELS: readonly IShareLevelInfo[] = [
  {
    level: 'owner',
    short: 'only me',
    label: 'Only me',
    explanation: 'Only me, and people who may open my IDE: teachers and admins.'
  },
  {
    level: 'authenticated',
    short: 'class',
    label: 'Anyone in this class',
    explanation: 'Anyone logged in to this hub.'
  },
  {
    level: 'public',
    short: 'public',
    label: 'Anyone with the link',
    explanation: 'Anyone with the link, without logging in.'
  }
];

export function shareLevelInfo(level: string): IShareLevelInfo | undefined {
  return SHARE_LEVELS.find(info => info.level === level);
}

/** The status bar text: "Preview: only me", "Preview: class", "Preview: public". */
export function previewStatusText(model: IPreviewModel): string {
  return `Preview: ${shareLevelInfo(model.share)?.short ?? model.share}`;
}

/**
 * The preview URL when it is safe to put in a link: http(s) only, so a bad reply can
 * never turn the Open button into a `javascript:` URL.
 */
export function safePreviewUrl(url: unknown): string | null {
  if (typeof url !== 'string') {
    return null;
  }
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}
