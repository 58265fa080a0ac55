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
  /** One word, for the status bar. */
  short: string;
  /** The option's label, and its few words. */
  label: string;
  summary: string;
  /** Who gets in, in a sentence. */
  explanation: string;
}

export const SHARE_LEVELS: readonly IShareLevelInfo[] = [
  {
    level: 'owner',
    short: 'private',
    label: 'Private',
    summary: 'only me',
    explanation: 'Only me and people who can open my IDE (teachers, admins).'
  },
  {
    level: 'authenticated',
    short: 'hub',
    label: 'Hub',
    summary: 'anyone logged in',
    explanation: 'Anyone logged in to this hub.'
  },
  {
    level: 'public',
    short: 'public',
    label: 'Public',
    summary: 'anyone with the link',
    explanation: 'Anyone with the link, without logging in.'
  }
];

export function shareLevelInfo(level: string): IShareLevelInfo | undefined {
  return SHARE_LEVELS.find(info => info.level === level);
}

/** The status bar text: "Preview: private", "Preview: hub", "Preview: public". */
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
