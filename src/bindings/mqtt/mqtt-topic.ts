// MQTT topic names and filters (MQTT 5 §4.7): matching a topic against a filter, and the topic a
// form names.
import { isTopicFilter } from "../form-selection.js";

/** True when `topic` matches `filter` (`+` one level, `#` the rest; `$…` topics only literally). */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const filterLevels = filter.split("/");
  const topicLevels = topic.split("/");
  for (let i = 0; i < filterLevels.length; i++) {
    const level = filterLevels[i];
    if (level === "#") return true;
    if (i >= topicLevels.length) return false;
    if (level !== "+" && level !== topicLevels[i]) return false;
  }
  return filterLevels.length === topicLevels.length;
}

/**
 * Whether every topic `filter` can match is one `allowed` matches, where `allowed` has literal
 * levels, `+`, and `#` last only: a `+` is filled by one level (a literal or `+`), `#` by anything.
 */
export function filterWithin(filter: string, allowed: string): boolean {
  const f = filter.split("/");
  const a = allowed.split("/");
  for (let i = 0; i < a.length; i++) {
    const level = a[i];
    if (level === "#") return true;
    const given = f[i];
    if (given === undefined || given === "#") return false;
    if (level !== "+" && given !== level) return false;
  }
  return f.length === a.length;
}

/** The topic in an `mqtt://broker/a/b` href: its path without the leading slash, %-decoded. */
export function hrefTopic(href: string): string | undefined {
  const path = new URL(href).pathname.replace(/^\//, "");
  if (path === "") return undefined;
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

/** A topic one may publish to: not empty, no wildcards, no NUL. */
export function isTopicName(topic: string): boolean {
  return topic !== "" && !/[+#\0]/.test(topic);
}

export { isTopicFilter };
