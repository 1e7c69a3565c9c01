// The GraphQL schema of the hub, in SDL: the one contract of /graphql over HTTP and over WebSocket
// (graphql-ws). Kept as a TypeScript string so that the compiler ships it; documented in
// docs/graphql.md, and introspection answers with it.
export const SCHEMA_SDL = /* GraphQL */ `
  """
  Any JSON value: a TD, a property's value, an action's input or output.
  """
  scalar JSON

  """
  A whole number from -(2^53 - 1) to 2^53 - 1, as a JSON number: a seq (a position in the Log) or a
  count of Changes. GraphQL's Int stops at 2^31 - 1, which a busy hub's Log passes in weeks.
  """
  scalar SafeInt

  """
  Queries over the directory, the graph of Things and the Log.
  """
  type Query {
    """
    One Thing, or null when no live Thing has this id (a malformed IRI is an error).
    """
    thing(id: ID!): Thing
    """
    Things, a page at a time. Without a filter: every Thing in id order. With one: the graph query
    language of docs/queries.md (needs the hub's graph). 'first' is at most the hub's limit.
    'after' is the 'next' of the previous page: the Things after the last one it gave, so one
    registered or removed between pages neither hides another nor shows one twice.
    """
    things(filter: String, first: Int = 100, after: String): ThingPage!
    """
    An RFC 9535 JSONPath query over every TD (W3C WoT Discovery syntactic search); the selected values.
    It costs one per Thing in the directory, toward the operation's cost limit.
    """
    search(jsonpath: String!): [JSON]!
    """
    The global feed of Changes, oldest first (or newest first with order: DESC). 'after' is the
    cursor of the previous page (its 'next'): the Changes after it, or before it when newest first.
    'since' and 'until' (inclusive) are RFC 3339, relative (-15m) or local (yesterday 14:02), as
    in 'history'; newest first with 'until' starts there.
    """
    changes(
      filter: ChangeFilter
      since: String
      until: String
      after: SafeInt
      first: Int = 100
      order: Order = ASC
    ): ChangePage!
    """
    One Change, by its position in the Log; null past the Log's end.
    """
    change(seq: SafeInt!): Change
    """
    A Thing's Changes, newest first by default. Times are RFC 3339, relative (-15m) or local
    (yesterday 14:02). 'after' is the cursor of the previous page (its 'next').
    """
    history(
      thing: ID!
      affordance: String
      kinds: [String!]
      since: String
      until: String
      order: Order = DESC
      first: Int = 100
      after: SafeInt
    ): ChangePage!
    """
    The Thing as it was at a time (default now): its TD then, every property's value then.
    """
    stateAt(thing: ID!, at: String): ThingState!
    """
    What changed on the Thing between two times: each property before and after, and the TD.
    """
    diff(thing: ID!, from: String!, to: String): ThingDiff!
    """
    What changed anywhere between two times (GET /diff): the diff of each Thing with a Change
    matching the filter in between, in the order of its first such Change; with filter.affordance,
    each diff narrowed to it. 'first' Things at most (up to 100); 'after' is the 'next' of the
    previous page, with the page's own 'from' and 'to'.
    """
    diffs(filter: ChangeFilter, from: String!, to: String, first: Int = 20, after: SafeInt): DiffPage!
    """
    The Log's head (size and RFC 9162 root) and its latest signed checkpoint.
    """
    log: LogHead!
    """
    Stored releases, newest first (docs/releases.md). 'after' is the 'next' of the previous page.
    """
    releases(name: String, first: Int = 100, after: Int): ReleasePage!
    """
    One release document with its provenance (docs/releases.md), or null when none has this id.
    """
    release(id: ID!): JSON
    """
    What rolling a release out would do now, per Thing: the plan of GET /releases/{id}/plan. 'select',
    a graph filter, narrows it to the Things it matches.
    """
    plan(release: ID!, select: String): JSON!
    """
    What drifts now from each Thing's active release, of one Thing or of all.
    """
    drift(thing: ID): [Drift!]!
    """
    Rollouts, newest first, of one release or all, with their progress. 'after' is the 'next' of the
    previous page.
    """
    rollouts(release: ID, status: String, first: Int = 100, after: Int): RolloutPage!
    """
    One rollout with its progress and its steps, or null when none has this id.
    """
    rollout(id: ID!): Rollout
    """
    A Thing's lineage: its active release, and which release replaced which, newest first.
    """
    lineage(thing: ID!, first: Int = 100): Lineage!
  }

  """
  Commands: every one becomes Changes in the Log, caused by the authenticated actor.
  """
  type Mutation {
    """
    Stores a release document built by 'things build' (POST /releases): validated, its id recomputed;
    storing an id already stored changes nothing ('created' false).
    """
    storeRelease(document: JSON!): StoredRelease!
    """
    Registers or replaces a TD (with an id), or registers an anonymous one (a urn:uuid id is given).
    """
    register(td: JSON!): Registration!
    """
    Registers or replaces every TD of the list in one transaction, or none (POST /things/batch):
    when any is refused, one BAD_USER_INPUT error lists each in 'refused' (index, id, status, detail, errors).
    """
    registerAll(tds: [JSON!]!): [Registration!]!
    """
    Updates a TD with an RFC 7396 JSON merge patch.
    """
    update(id: ID!, patch: JSON!): Registration!
    """
    Removes a TD from the directory; the 'removed' Change.
    """
    remove(id: ID!): Change!
    """
    Writes a property through the Thing's binding: 'desired', then 'completed' or 'failed'.
    """
    writeProperty(thing: ID!, name: String!, value: JSON!): Command!
    """
    Reads a property from the Thing through its binding (GET /things/{id}/properties/{name}) and
    answers its value, recorded as 'reported' with cause via 'read:<scheme>' and surface 'graphql'.
    A mutation: it reaches the device and writes to the Log.
    """
    readProperty(thing: ID!, name: String!): JSON
    """
    Invokes an action through the Thing's binding: 'invoked', then 'completed' or 'failed'.
    """
    invokeAction(thing: ID!, name: String!, input: JSON): Invocation!
    """
    Adds a typed link from one Thing to another: the 'described' Change that edited the TD's
    links (a 'linked' Change follows it); null when the link was already there.
    """
    link(from: ID!, rel: String!, to: ID!): Change
    """
    Removes the links of that rel to that Thing: the 'described' Change (an 'unlinked' one follows).
    """
    unlink(from: ID!, rel: String!, to: ID!): Change!
    """
    Starts a rollout of a stored release (POST /releases/{id}/rollouts): planned now ('select' narrows
    it as in plan), refused when the plan cannot be applied or matches no Thing; then applied
    Thing by Thing, 'concurrency' at once (1..1000, default 16), stopping after more than
    'maxFailures' (default 0) failed Things. Follow it with the rolloutProgress subscription.
    """
    rollout(release: ID!, select: String, concurrency: Int, maxFailures: Int): Rollout!
    """
    Cancels a running rollout (POST /rollouts/{id}/cancel): no new step starts, the pending steps
    are skipped, a step in flight sends nothing more and makes no release active; it ends failed, 'cancelled by <actor>'. Refused once
    it has ended.
    """
    cancelRollout(id: ID!): Rollout!
  }

  """
  Streams, over WebSocket only (graphql-ws).
  """
  type Subscription {
    """
    Every Change that matches, live; with 'after' (a seq), first the committed ones after it, with
    no gap and no duplicate: a client resumes from the last seq it saw.
    """
    changes(filter: ChangeFilter, after: SafeInt): Change!
    """
    A Thing's events ('emitted' Changes), of one event or of all; with 'after', from that seq on.
    Completes when the Thing is removed.
    """
    events(thing: ID!, name: String, after: SafeInt): Change!
    """
    A Thing's property values: first the current ones, then each new reported value. Completes
    when the Thing is removed.
    """
    state(thing: ID!): PropertyValue!
    """
    A rollout's progress: first its status now, then an event per finished step and per status, and
    the stream completes when the rollout has ended (completed or failed).
    """
    rolloutProgress(id: ID!): RolloutEvent!
  }

  enum Order {
    ASC
    DESC
  }

  """
  The feed's filters; each given one must match.
  """
  input ChangeFilter {
    thing: ID
    """
    Only Changes of Things of this type or a subtype (as the graph filter "type = …") when the Change
    was made: by the TD in force at its seq, so a Thing re-described or removed since keeps its past
    Changes under the type it had then (docs/changes.md).
    """
    type: String
    """
    Only Changes of this property, action or event (by its name in the TD), of any Thing.
    """
    affordance: String
    kinds: [String!]
    actor: String
    release: String
    """
    The cause's correlation: one command's Changes (its 'desired' or 'invoked' and the outcome),
    one rollout step's.
    """
    correlation: String
  }

  """
  A Thing as the directory holds it, with its state and its links.
  """
  type Thing {
    id: ID!
    title: String
    """
    The TD's @type values, as written.
    """
    types: [String!]!
    """
    The TD as registered.
    """
    td: JSON!
    """
    The seq of the Change that last described it.
    """
    version: Int!
    created: String!
    modified: String!
    expires: String
    """
    Each property's latest reported value.
    """
    properties: [PropertyValue!]!
    """
    One property's latest reported value, or null.
    """
    property(name: String!): PropertyValue
    """
    The Thing's Changes, newest first.
    """
    history(affordance: String, kinds: [String!], first: Int = 20, after: SafeInt): ChangePage!
    """
    Links from this Thing, of one rel or all.
    """
    links(rel: String): [Link!]!
    """
    Links to this Thing from others, of one rel or all.
    """
    linkedFrom(rel: String): [Link!]!
  }

  """
  A stored release, as listed (docs/releases.md).
  """
  type ReleaseSummary {
    id: ID!
    name: String!
    supersedes: ID
    "record, alert or revert"
    drift: String!
    steps: Int!
    builtAt: String!
    builder: String!
    storedAt: String!
  }

  type ReleasePage {
    releases: [ReleaseSummary!]!
    """
    Give it back as 'after' for the next page; null on the last page.
    """
    next: Int
  }

  type StoredRelease {
    id: ID!
    created: Boolean!
    storedAt: String!
  }

  type ThingPage {
    items: [Thing!]!
    """
    Give it back as 'after' for the next page; null on the last page.
    """
    next: String
  }

  """
  A typed edge between two Things; 'resolved' is false while the target is not (yet) known.
  """
  type Link {
    from: ID!
    rel: String!
    to: ID!
    resolved: Boolean!
    type: String
    anchor: String
    """
    The Thing the link points to, when known.
    """
    target: Thing
    """
    The Thing the link starts from.
    """
    source: Thing
  }

  """
  Why a Change happened.
  """
  type Cause {
    actor: String!
    "The protocol or surface: 'read:<scheme>' for a value the hub read from the Thing, the plain scheme for one it pushed."
    via: String
    "For a value the hub read on someone's request, the surface they asked through (http, graphql, rollout); via then says how."
    surface: String
    release: String
    rule: String
    correlation: String
    "The URI variables a command was sent with (TD uriVariables), when it had any."
    uriVariables: JSON
  }

  """
  One immutable record of the Log (docs/changes.md).
  """
  type Change {
    seq: SafeInt!
    thing: ID!
    affordance: String
    kind: String!
    value: JSON
    previous: JSON
    """
    Whether the Change has a value: 'value' is null both for a value of null and for none.
    """
    hasValue: Boolean!
    """
    Whether the Change has a previous value, which may be null as 'value' may.
    """
    hasPrevious: Boolean!
    """
    The device's own time, when it sent one.
    """
    at: String
    """
    The hub's time of the Change (from its hybrid logical clock).
    """
    time: String!
    hlc: String!
    cause: Cause!
    """
    The Change's RFC 9162 leaf hash (hex) as the Log recorded it: what its inclusion proofs prove.
    """
    leaf: String
    """
    Why it happened: the chain of its causes in the Log, as GET /changes/{seq}/why and 'things why'
    read it (a reported value back to the write that asked for it, an outcome to its command, a
    command to who sent it).
    """
    why: Why!
  }

  """
  The chain of causes behind a Change, nearest first, and where it ends.
  """
  type Why {
    chain: [WhyLink!]!
    """
    Where the chain ends: who acted ('admin via http'; a release's actor, rule and rollout), or
    'the Thing itself: …' when nothing the hub sent asked for a reported value.
    """
    origin: String!
    """
    For a reported Change, how its value was got: 'read by the hub over HTTP' (cause via
    'read:http') or 'pushed by the device over MQTT' (via 'mqtt'); null otherwise.
    """
    delivery: String
  }

  """
  One link of the chain: a Change, and how the one before it in the chain came of it.
  """
  type WhyLink {
    """
    'the write that asked for this value', 'the same value, reported before', 'the command it
    ends' or 'its outcome'.
    """
    relation: String!
    change: Change!
  }

  """
  A page of the diff of every Thing that changed between two times.
  """
  type DiffPage {
    from: String!
    to: String!
    fromSeq: SafeInt!
    toSeq: SafeInt!
    things: [ThingDiff!]!
    """
    The seq to give back as 'after' for the next page (with this page's from and to); null on the last page.
    """
    next: SafeInt
  }

  type ChangePage {
    changes: [Change!]!
    """
    The seq to give back as 'after' for the next page; null on the last page.
    """
    next: SafeInt
  }

  """
  A property's value and the Change that set it.
  """
  type PropertyValue {
    name: String!
    value: JSON
    seq: SafeInt!
    time: String!
    at: String
    cause: Cause!
  }

  type ThingState {
    thing: ID!
    at: String!
    seq: SafeInt!
    td: JSON
    properties: [PropertyValue!]!
    desired: [PropertyValue!]!
  }

  type AffordanceDiff {
    affordance: String!
    before: JSON
    after: JSON
    changes: SafeInt!
    cause: Cause
    time: String
    """
    The last write of the property in between (its 'desired' Change: the value asked for, and who
    asked), when it was written in between; null otherwise.
    """
    desired: InteractionChange
  }

  type ThingDiff {
    thing: ID!
    from: String!
    to: String!
    fromSeq: SafeInt!
    toSeq: SafeInt!
    """
    The TD's change as a JSON merge patch, when it was described anew in between.
    """
    description: JSON
    """
    The Thing's own Changes in between (described, removed), when there were any: a Thing
    registered and removed in between has no description patch, but has these.
    """
    descriptionChanges: DescriptionChanges
    properties: [AffordanceDiff!]!
    """
    The actions invoked, completed or failed in between, by name.
    """
    actions: [InteractionDiff!]!
    """
    The properties written in between (desired, and the completed or failed that ended each
    write), by name: who asked for a value, which properties shows only as the Thing reported it.
    """
    writes: [InteractionDiff!]!
    """
    The events emitted in between, by name.
    """
    events: [InteractionDiff!]!
    """
    Whether the Thing answered at both ends, and how often it went away and came back in
    between (unreachable / reachable Changes); null when it was reachable throughout.
    """
    reachability: ReachabilityDiff
    """
    The drift Changes in between (from the Thing's active release), and their alerts; null when none.
    """
    drift: DriftDiff
    """
    The links the Thing gained and lost in between (linked / unlinked); null when none changed.
    """
    links: LinksDiff
    """
    The releases rolled out to the Thing in between (applied Changes): how many, and the last,
    whose value names the release now active; null when none was.
    """
    releases: ReleasesDiff
  }

  """
  The applied Changes in between: {applied: count}, and the last of them.
  """
  type ReleasesDiff {
    counts: JSON!
    last: InteractionChange!
  }

  """
  The Thing's TD registered, replaced or removed in between: how many of each, and the last.
  """
  type DescriptionChanges {
    """
    Changes of each kind in between (described, removed): {kind: count}.
    """
    counts: JSON!
    last: DescriptionChange!
  }

  type DescriptionChange {
    seq: SafeInt!
    kind: String!
    cause: Cause!
    time: String!
  }

  """
  An action, a property's writes or an event with Changes in between: how many of each kind, and
  the last of them.
  """
  type InteractionDiff {
    affordance: String!
    """
    Changes of each kind in between (invoked, desired, completed, failed, emitted): {kind: count}.
    """
    counts: JSON!
    last: InteractionChange!
    """
    In 'writes' only: the property's last 'desired' Change in between, the value asked for and who
    asked ('last' may be the write's outcome, which has no such value); null otherwise.
    """
    desired: InteractionChange
  }

  """
  The Thing's reachability at both ends and in between (a Thing with no unreachable Change is
  reachable).
  """
  type ReachabilityDiff {
    "Whether the Thing answered at from; null when it was not in the directory then (not registered yet, or removed)."
    reachableAtFrom: Boolean
    "Whether the Thing answered at to; null when it was not in the directory then (removed)."
    reachableAtTo: Boolean
    """
    unreachable (times it went away) and reachable (times it came back) Changes in between:
    {kind: count}; {} when it was unreachable all along.
    """
    counts: JSON!
    """
    The latest reachability Change at or before to (before from when it was unreachable all
    along): its value is the reason.
    """
    last: InteractionChange!
  }

  """
  The drift Changes in between, and the alert Changes a release's alert policy recorded after
  them: how many of each, the latest of the two, and by property.
  """
  type DriftDiff {
    changes: SafeInt!
    alerts: SafeInt!
    last: DriftChange!
    properties: [PropertyDrift!]!
  }

  type PropertyDrift {
    affordance: String!
    changes: SafeInt!
    alerts: SafeInt!
    """
    The last of its drift and alert Changes (kind says which). Its value is the drift as recorded:
    {status, release, desired, observed, since, until, policy} (an alert's with about: "drift").
    """
    last: InteractionChange!
  }

  type DriftChange {
    seq: SafeInt!
    kind: String!
    """
    The property that drifted.
    """
    affordance: String!
    value: JSON
    cause: Cause!
    time: String!
  }

  """
  The links at from and at to compared (added, removed), and the linked / unlinked Changes in
  between (a link added and removed again is in counts only).
  """
  type LinksDiff {
    added: [LinkValue!]!
    removed: [LinkValue!]!
    """
    linked and unlinked Changes in between: {kind: count}.
    """
    counts: JSON!
    """
    The last of them; its value is the link.
    """
    last: InteractionChange!
  }

  """
  A link as a linked / unlinked Change records it.
  """
  type LinkValue {
    rel: String!
    href: String!
    type: String
    anchor: String
  }

  type InteractionChange {
    seq: SafeInt!
    kind: String!
    value: JSON
    cause: Cause!
    time: String!
  }

  type Registration {
    id: ID!
    created: Boolean!
    change: Change!
  }

  """
  A property write: its correlation id links its Changes.
  """
  type Command {
    correlation: String!
  }

  type Invocation {
    """
    'completed', or 'running' for an asynchronous action the hub follows.
    """
    status: String!
    output: JSON
    correlation: String!
  }

  type Checkpoint {
    origin: String!
    size: SafeInt!
    root: String!
    time: String!
    signature: String!
  }

  type LogHead {
    size: SafeInt!
    """
    The RFC 9162 Merkle root over the whole Log, hex.
    """
    root: String!
    checkpoint: Checkpoint
  }

  """
  A property whose observed value differs from what its active release desires.
  """
  type Drift {
    thing: ID!
    affordance: String!
    release: String!
    desired: JSON
    observed: JSON
    """
    Since when it drifts (RFC 3339).
    """
    since: String!
    """
    The release's policy for it: 'record', 'alert' or 'revert'.
    """
    policy: String!
  }

  """
  The one-time application of a release, Thing by Thing (docs/releases.md).
  """
  type Rollout {
    "urn:uuid:…"
    id: ID!
    release: ID!
    "The release's name."
    name: String!
    "running, completed or failed"
    status: String!
    concurrency: Int!
    maxFailures: Int!
    select: String
    "Who started it."
    actor: String!
    created: String!
    ended: String
    "Why it failed."
    reason: String
    progress: RolloutProgress!
    """
    Its steps (one per Thing) in order of application, of one status or all; 'after' is the 'next'
    of the previous page.
    """
    steps(status: String, first: Int = 100, after: Int): RolloutStepPage!
  }

  """
  How many steps of a rollout are in each status.
  """
  type RolloutProgress {
    pending: Int!
    applying: Int!
    completed: Int!
    failed: Int!
    skipped: Int!
    total: Int!
  }

  type RolloutPage {
    rollouts: [Rollout!]!
    """
    Give it back as 'after' for the next page; null on the last page.
    """
    next: Int
  }

  """
  A rollout's work on one Thing.
  """
  type RolloutStep {
    thing: ID!
    position: Int!
    "pending, applying, completed, failed or skipped"
    status: String!
    items: [RolloutItem!]!
    """
    Every property value the release wants on the Thing.
    """
    desired: JSON!
    reason: String
    updated: String!
  }

  """
  One property write, action or link of a step, and its outcome.
  """
  type RolloutItem {
    "property, action or link"
    kind: String!
    name: String!
    desired: JSON
    "pending, completed, failed, skipped or in-place"
    status: String!
    error: JSON
    """
    A property written: what the Thing answered when read back after the write ({"value": …}), or why
    it could not be read ({"error": "…"}); null when the property cannot be read.
    """
    readBack: JSON
  }

  type RolloutStepPage {
    steps: [RolloutStep!]!
    """
    Give it back as 'after' for the next page; null on the last page.
    """
    next: Int
  }

  """
  A rollout's progress as it happens: 'status' (of the rollout) or 'step' (one Thing finished).
  """
  type RolloutEvent {
    type: String!
    rollout: ID!
    "The Thing of a 'step' event."
    thing: ID
    "The rollout's status, or the step's."
    status: String!
    reason: String
    progress: RolloutProgress!
  }

  """
  A Thing's releases: the active one, and the 'applied' Changes that made each one active.
  """
  type Lineage {
    thing: ID!
    active: ID
    entries: [LineageEntry!]!
  }

  type LineageEntry {
    release: ID!
    name: String!
    rollout: ID!
    "The release that was active before."
    replaced: ID
    "The seq of the 'applied' Change."
    seq: SafeInt!
    "When it became active (RFC 3339)."
    at: String!
    actor: String!
    desired: JSON!
    drift: JSON!
  }
`;
