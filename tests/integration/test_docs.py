"""The docs' examples, run as written (issue 11).

Every request/answer example of README.md, client/README.md and
proto/PROTOCOL.md, and every shell example there with its output, is read
from the markdown when the test runs and played against a sandbox like
`make run`'s: the harness's MariaDB loaded with scripts/demo.sql by the
`mariadb` client, the daemon's MySQL user given the grant that
scripts/run-sandbox.sh gives it, and the daemon configured as that script
configures it (grant and config are read from the script). The daemon's
answers must equal the documented ones, key order included, except:

- `lease`: ids depend on what ran before. Within one session the same
  documented id must always be the same real id, different ones different,
  in the same order; a request naming a documented id gets the real one.
- `fence`: MySQL mints it (UUID_SHORT()); as for lease ids, within one
  session the same documented fence is the same real one, and different
  ones are different and in the same order.
- the keys in VARYING (times, who the client is): the real value must be of
  the documented kind.
- a string documented as "…" stands for any string (text left out).

What is an example, in a fenced code block:

- `→ {json}` / `← {json}`: a request / an answer on the session's
  connection; indented lines under one continue its JSON.
- bare `{json}` lines in a ```json block, or after
  `$ socat - UNIX-CONNECT:./run/tablelockd.sock`: a request when it has
  "op", an answer when it has "ok" or "event".
- `$ COMMAND` (lines ending in a backslash continue it) and the lines up to
  the next `$`: a shell command, run by /bin/sh in a directory whose
  ./run/tablelockd.sock is the sandbox's socket, with client/ on PATH and
  TABLELOCK_SOCKET set, and its output (stdout and stderr). A command shown
  without output must print nothing.

Other blocks (C, Python, config files) are not examples. An HTML comment
right before a block (blank lines between are fine) changes how it runs:

- `<!-- doctest: skip (REASON) -->`: not run (an illustration that cannot
  run as it stands); its JSON must still parse.
- `<!-- doctest: continue -->`: the same session as the example block
  before it: same connection, same lease ids, the data as that one left it.
  Without it, a block starts a session of its own on a fresh demo schema.
- `<!-- doctest: before` then lines `[NAME ]→ {json}` / `[NAME ]← {json}`,
  then `-->`: run first, unseen by readers (a lease the example needs);
  NAME runs a line on another connection of the session.
- `<!-- doctest: env NAME=VALUE ... -->`: for the block's shell commands.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import (DAEMON_PASSWORD, DAEMON_USER, REPO, Client, Daemon, daemon_binary, scaled,
                      settled_status)

FILES = ("README.md", "client/README.md", "proto/PROTOCOL.md")

# Sections that must hold at least one example the test runs: a file whose
# examples the extraction stops finding fails loudly.
REQUIRED_SECTIONS = {
    "README.md": ["The protocol by example", "Three ways in"],
    "client/README.md": ["The `tablelock` command"],
    "proto/PROTOCOL.md": ["3.1 Shapes", "ping", "hello", "acquire", "query", "commit", "rollback",
                          "renew", "transact", "revoke", "10. A session by hand"],
}

# Values that differ from run to run, by key: (what the daemon's value must
# be, the check). A documented null must stay null.
VARYING = {
    "waited_ms": ("a non-negative integer", lambda doc, real: type(real) is int and real >= 0),
    # user:root in the docs; whoever runs the test here.
    "identity": ("an identity of the same kind (user:, uid:, token:, cn:)",
                 lambda doc, real: isinstance(real, str) and ":" in real
                 and real.split(":", 1)[0] == doc.split(":", 1)[0]),
}
ELIDED = "…"

SANDBOX_SOCKET = "./run/tablelockd.sock"
INTERACTIVE_SOCAT = re.compile(r"^socat\s+-\s+UNIX-CONNECT:(\S+)$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")
ARROW = re.compile(r"^(→|←)\s*(.*)$")
BEFORE_LINE = re.compile(r"^(?:(\w+)\s+)?(→|←)\s*(\{.*\})$")
DIRECTIVE = re.compile(r"^<!--\s*doctest:\s*(\w+)(.*?)-->$", re.S)


class ExtractionError(Exception):
    pass


# ---------------------------------------------------------------- extraction


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ValueError("duplicate key %r" % dups[0])
    return dict(pairs)


def parse_json(text, where):
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ValueError as e:
        raise ExtractionError("%s: not one JSON object (%s): %s" % (where, e, text))
    if not isinstance(obj, dict):
        raise ExtractionError("%s: not a JSON object: %s" % (where, text))
    return obj


class Message:
    """One documented protocol line: a request (→) or an answer (←) on
    connection conn (None: the session's own)."""

    def __init__(self, where, direction, obj, text, conn=None):
        self.where, self.direction, self.obj, self.text, self.conn = where, direction, obj, text, conn


class Command:
    """One documented shell command and the output shown under it."""

    def __init__(self, where, command):
        self.where, self.command, self.output = where, command, []


class Block:
    def __init__(self, path, line, section, lang):
        self.path, self.line, self.section, self.lang = path, line, section, lang
        self.where = "%s:%d" % (path, line)
        self.items = []
        self.skip = None        # the reason, when skipped
        self.cont = False
        self.before = []        # hidden Messages
        self.env = {}

    def add_directive(self, where, comment):
        m = DIRECTIVE.match(comment)
        if not m:
            raise ExtractionError("%s: a doctest comment must read <!-- doctest: VERB ... -->: %s"
                                  % (where, comment))
        verb, rest = m.group(1), m.group(2).strip()
        if verb == "skip":
            reason = re.fullmatch(r"\((.+)\)", rest, re.S)
            if not reason or not reason.group(1).strip():
                raise ExtractionError("%s: skip needs a reason: <!-- doctest: skip (why) -->" % where)
            self.skip = " ".join(reason.group(1).split())
        elif verb == "continue" and not rest:
            self.cont = True
        elif verb == "before":
            for n, line in enumerate(rest.splitlines()):
                line = line.strip()
                if not line:
                    continue
                lm = BEFORE_LINE.match(line)
                if not lm:
                    raise ExtractionError("%s: a before line must be '[NAME ]→ {json}' or '[NAME ]← {json}': %s"
                                          % (where, line))
                at = "%s (before, line %d)" % (where, n + 1)
                self.before.append(Message(at, lm.group(2), parse_json(lm.group(3), at), lm.group(3),
                                           conn=lm.group(1)))
            if not self.before:
                raise ExtractionError("%s: a before directive without lines" % where)
        elif verb == "env" and rest:
            for word in rest.split():
                name, eq, value = word.partition("=")
                if not eq or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
                    raise ExtractionError("%s: env takes NAME=VALUE words: %s" % (where, word))
                self.env[name] = value
        else:
            raise ExtractionError("%s: unknown doctest directive %r" % (where, comment))

    def messages(self):
        return [i for i in self.before + self.items if isinstance(i, Message)]

    def commands(self):
        return [i for i in self.items if isinstance(i, Command)]


def _is_example(lang, body):
    return lang == "json" or any(l.startswith(("$ ", "→", "←")) for l in body)


def parse_block(block, body):
    """Fills block.items from the fenced block's lines (body: (line number,
    text) pairs); raises ExtractionError on a line it cannot place."""
    bare_json = block.lang == "json"
    command = None
    i = 0
    while i < len(body):
        n, line = body[i]
        where = "%s:%d" % (block.path, n)
        if line.startswith("$ "):
            text = line[2:]
            while text.endswith("\\"):
                i += 1
                if i == len(body):
                    raise ExtractionError("%s: the command's last line ends in a backslash" % where)
                text += "\n" + body[i][1]
            i += 1
            socat = INTERACTIVE_SOCAT.match(text)
            if socat:
                if socat.group(1) != SANDBOX_SOCKET:
                    raise ExtractionError("%s: an interactive session on %s, not the sandbox's %s"
                                          % (where, socat.group(1), SANDBOX_SOCKET))
                command, bare_json = None, True
                continue
            command, bare_json = Command(where, text), False
            block.items.append(command)
            continue
        if command is not None:
            command.output.append(line)
            i += 1
            continue
        m = ARROW.match(line)
        if m:
            text = m.group(2)
            while i + 1 < len(body) and body[i + 1][1][:1] in (" ", "\t") and body[i + 1][1].strip():
                i += 1
                text += body[i][1].strip()
            block.items.append(Message(where, m.group(1), parse_json(text, where), text))
            i += 1
            continue
        if bare_json and line.startswith("{"):
            obj = parse_json(line, where)
            if "op" in obj:
                direction = "→"
            elif "ok" in obj or "event" in obj:
                direction = "←"
            else:
                raise ExtractionError("%s: a JSON line with neither \"op\" (a request) nor \"ok\" or "
                                      "\"event\" (an answer): %s" % (where, line))
            block.items.append(Message(where, direction, obj, line))
            i += 1
            continue
        if line.strip():
            raise ExtractionError("%s: a line in an example block that is neither a request, an "
                                  "answer, nor a command or its output: %s" % (where, line))
        i += 1
    if not block.items:
        raise ExtractionError("%s: an example block without any request, answer or command" % block.where)


def extract(path):
    """The example blocks of the markdown file path (relative to the repo)."""
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks = []
    pending = []            # (where, comment) of directives waiting for their block
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        where = "%s:%d" % (path, i + 1)
        if stripped.startswith("<!--") and "doctest" in stripped:
            comment = [line]
            while "-->" not in lines[i]:
                i += 1
                if i == len(lines):
                    raise ExtractionError("%s: unterminated doctest comment" % where)
                comment.append(lines[i])
            if not lines[i].rstrip().endswith("-->"):
                raise ExtractionError("%s: text after a doctest comment" % where)
            pending.append((where, "\n".join(comment).strip()))
            i += 1
            continue
        fence = FENCE.match(line)
        if fence:
            indent, marker, lang = fence.groups()
            fence_line = i + 1
            body = []
            i += 1
            while i < len(lines) and not re.fullmatch(r"\s*%s%s*\s*" % (re.escape(marker), marker[0]),
                                                      lines[i]):
                text = lines[i]
                body.append((i + 1, text[len(indent):] if text.startswith(indent) else text.lstrip()))
                i += 1
            if i == len(lines):
                raise ExtractionError("%s: unterminated code block" % where)
            i += 1
            if _is_example(lang, [t for _, t in body]):
                block = Block(path, fence_line, section, lang)
                for at, comment in pending:
                    block.add_directive(at, comment)
                parse_block(block, body)
                blocks.append(block)
            elif pending:
                raise ExtractionError("%s: doctest directive before a block that holds no example"
                                      % pending[0][0])
            pending = []
            continue
        if stripped.startswith("#"):
            section = stripped.lstrip("#").strip()
        if stripped.startswith(("→", "←", "$ ")):
            raise ExtractionError("%s: an example line outside a code block: %s" % (where, stripped))
        if stripped and pending:
            raise ExtractionError("%s: doctest directive not right before a code block" % pending[0][0])
        i += 1
    if pending:
        raise ExtractionError("%s: doctest directive at the end of the file" % pending[0][0])
    return blocks


class Session:
    """Example blocks run one after the other on the same connections."""

    def __init__(self, first):
        self.blocks = [first]
        self.id = first.where
        self.skip = first.skip


def sessions_of(blocks):
    sessions = []
    for block in blocks:
        if block.cont:
            if not sessions:
                raise ExtractionError("%s: continue, but no example block before it" % block.where)
            if block.skip:
                raise ExtractionError("%s: a continued block cannot be skipped on its own" % block.where)
            sessions[-1].blocks.append(block)
        else:
            sessions.append(Session(block))
    return sessions


EXTRACTED = {}
PROBLEMS = {}
for _path in FILES:
    try:
        EXTRACTED[_path] = extract(_path)
    except (ExtractionError, OSError) as _e:
        PROBLEMS[_path] = str(_e)
        EXTRACTED[_path] = []
SESSIONS = []
for _path in FILES:
    try:
        SESSIONS += sessions_of(EXTRACTED[_path])
    except ExtractionError as _e:
        PROBLEMS.setdefault(_path, str(_e))


@pytest.mark.parametrize("path", FILES)
def test_examples_are_found(path):
    assert path not in PROBLEMS, "cannot read the examples of %s: %s" % (path, PROBLEMS.get(path))
    blocks = EXTRACTED[path]
    runnable = [b for s in SESSIONS if s.blocks[0].path == path and not s.skip for b in s.blocks]
    assert runnable, "no example to run found in %s" % path
    for section in REQUIRED_SECTIONS[path]:
        assert any(b.section and b.section.endswith(section) for b in runnable), \
            "%s: no example to run found in section %r (sections with one: %r)" \
            % (path, section, sorted({b.section for b in runnable}))
    # Every JSON line parsed, skipped blocks too.
    assert all(isinstance(m.obj, dict) for b in blocks for m in b.messages())


# ---------------------------------------------------------------- the sandbox


def run_sandbox_setup():
    """(config sections, GRANT statements) of scripts/run-sandbox.sh, for the
    harness's MariaDB and this daemon; fails when the script no longer reads
    as expected."""
    with open(os.path.join(REPO, "scripts", "run-sandbox.sh")) as f:
        script = f.read()
    assert re.search(r'<\s*"?\$root/scripts/demo\.sql', script), \
        "scripts/run-sandbox.sh no longer loads scripts/demo.sql"
    grants = re.findall(r"^(GRANT [^;\n]+ TO '([^']+)'@'localhost');$", script, re.M)
    assert grants, "no GRANT in scripts/run-sandbox.sh"
    for _, user in grants:
        assert user == DAEMON_USER, "run-sandbox.sh grants to %r; the harness's daemon user is %r" % (user, DAEMON_USER)
    grant = [g for g, _ in grants]
    conf = re.search(r'^\s*cat >"\$conf\.tmp" <<EOF\n(.*?)\nEOF$', script, re.S | re.M)
    assert conf, "scripts/run-sandbox.sh no longer writes its config with cat >\"$conf.tmp\" <<EOF"
    sections, section = {}, None
    for line in conf.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith((";", "$marker")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections[section] = {}
            continue
        key, eq, value = line.partition("=")
        assert eq and section, "run-sandbox.sh's config: cannot read %r" % line
        sections[section][key.strip()] = value.strip()
    # Its paths and password are the harness's here.
    for section, key, value in (("daemon", "listen", "unix:$daemon_sock"), ("daemon", "state_file", "$run/lease_id"),
                                ("mysql", "socket", "$mysql_sock"), ("mysql", "password", "$password")):
        assert sections.get(section, {}).pop(key, None) == value, \
            "run-sandbox.sh's [%s] %s is no longer %s" % (section, key, value)
    sections["mysql"]["socket"] = None      # filled in by the fixture
    sections["mysql"]["password"] = DAEMON_PASSWORD
    for section, keys in sections.items():
        for key, value in keys.items():
            assert value is None or "$" not in value, \
                "run-sandbox.sh's [%s] %s = %s: a value this test cannot reproduce" % (section, key, value)
    assert sections["mysql"].get("user") == DAEMON_USER
    return sections, grant


class Sandbox:
    def __init__(self, mariadb, daemon, database, root):
        self.mariadb, self.daemon, self.database, self.root = mariadb, daemon, database, root
        self.sock = daemon.sock

    def load_demo_sql(self):
        with open(os.path.join(REPO, "scripts", "demo.sql"), "rb") as sql:
            p = subprocess.run(["mariadb", "--no-defaults", "--socket=" + self.mariadb.sock, "-uroot"],
                               stdin=sql, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=scaled(60))
        assert p.returncode == 0, "mariadb < scripts/demo.sql failed:\n" + p.stdout.decode(errors="replace")

    def reset(self):
        """The demo schema as scripts/demo.sql makes it, once no lease of an
        earlier example is left."""
        settled_status(self.daemon, timeout=10)
        names = [r[0] for r in self.mariadb.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (self.database,))]
        if names:
            self.mariadb.sql("DROP TABLE " + ", ".join("`%s`.`%s`" % (self.database, n) for n in names))
        self.load_demo_sql()


@pytest.fixture(scope="module")
def sandbox(mariadb):
    sections, grant = run_sandbox_setup()
    sections["mysql"]["socket"] = mariadb.sock
    database = sections["mysql"]["database"]
    assert any(re.search(r" ON `?%s`?\.\* " % re.escape(database), g) for g in grant), (grant, database)
    root = tempfile.mkdtemp(prefix="tl-docs-")
    d = Daemon(daemon_binary(), mariadb, sections, harness_defaults=False)
    try:
        for g in grant:
            mariadb.sql(g)
        box = Sandbox(mariadb, d, database, root)
        box.load_demo_sql()
        d.start()
        # The shell examples' ./run/tablelockd.sock.
        os.makedirs(os.path.join(root, "run"))
        os.symlink(d.sock, os.path.join(root, "run", "tablelockd.sock"))
        yield box
    finally:
        problems = d.teardown()
        mariadb.sql("DROP DATABASE IF EXISTS `%s`" % database)
        mariadb.sql("REVOKE ALL PRIVILEGES ON `%s`.* FROM %%s@'localhost'" % database, (DAEMON_USER,))
        shutil.rmtree(root, ignore_errors=True)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- comparing


class LeaseIds:
    """Documented lease ids (and fences) and the real ones they stand for,
    in one session."""

    def __init__(self):
        self.real = {}
        self.by_key = {"lease": self.real, "fence": {}}

    def bind(self, doc, real, where, key="lease"):
        known = self.by_key[key]
        if doc in known:
            assert known[doc] == real, "%s: %s %d is %d here, but %d before" % (where, key, doc, real, known[doc])
            return
        for d, r in known.items():
            assert r != real, "%s: documented %ss %d and %d are both %d" % (where, key, d, doc, real)
            assert (d < doc) == (r < real), \
                "%s: documented %ss %d and %d are %d and %d: not in the same order" % (where, key, d, doc, r, real)
        known[doc] = real

    def substitute(self, obj, where):
        """obj with every documented "lease" id replaced by the real one."""
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if k == "lease" and type(v) is int:
                    assert v in self.real, "%s: the request names lease %d, which no answer before it showed" % (where, v)
                    out[k] = self.real[v]
                else:
                    out[k] = self.substitute(v, where)
            return out
        if isinstance(obj, list):
            return [self.substitute(v, where) for v in obj]
        return obj


def mismatch(doc, real, ids, where, path=()):
    """None when the daemon's value real matches the documented doc (see the
    module's docstring), else what differs."""
    key = path[-1] if path and isinstance(path[-1], str) else None
    at = "".join("[%r]" % p for p in path) or "the message"
    if isinstance(doc, str) and doc == ELIDED:
        return None if isinstance(real, str) else "%s: a string, got %r" % (at, real)
    if key in ("lease", "fence") and type(doc) is int:
        if type(real) is not int or real <= 0:
            return "%s: a %s, got %r" % (at, key, real)
        ids.bind(doc, real, where, key)
        return None
    if key in VARYING and doc is not None:
        what, check = VARYING[key]
        return None if check(doc, real) else "%s: %s, got %r" % (at, what, real)
    if isinstance(doc, dict):
        if not isinstance(real, dict):
            return "%s: an object, got %r" % (at, real)
        if list(doc) != list(real):
            return "%s: keys %s, got %s" % (at, list(doc), list(real))
        for k in doc:
            problem = mismatch(doc[k], real[k], ids, where, path + (k,))
            if problem:
                return problem
        return None
    if isinstance(doc, list):
        if not isinstance(real, list) or len(doc) != len(real):
            return "%s: %r, got %r" % (at, doc, real)
        for n, (d, r) in enumerate(zip(doc, real)):
            problem = mismatch(d, r, ids, where, path + (n,))
            if problem:
                return problem
        return None
    if type(doc) is not type(real) or doc != real:
        return "%s: %r, got %r" % (at, doc, real)
    return None


def check_answer(doc_text, doc, real, ids, where):
    problem = mismatch(doc, real, ids, where)
    assert problem is None, "%s: the daemon's answer differs from the documented one (%s)\n  documented: %s\n" \
        "  daemon:     %s" % (where, problem, doc_text, json.dumps(real, ensure_ascii=False, separators=(",", ":")))


# ---------------------------------------------------------------- running


def output_lines(text):
    lines = [l.rstrip() for l in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def run_command(sandbox, block, cmd, ids):
    env = dict(os.environ, PATH=os.path.join(REPO, "client") + os.pathsep + os.environ.get("PATH", ""),
               TABLELOCK_SOCKET=os.path.join(sandbox.root, "run", "tablelockd.sock"), LC_ALL="C.UTF-8")
    env.update(block.env)
    if block.env.get("TABLELOCK_SOCKET") == "" and os.path.exists("/run/tablelockd/tablelockd.sock"):
        pytest.skip("%s: shows the error without a daemon at the default address, and this machine has one"
                    % cmd.where)
    p = subprocess.run(["/bin/sh", "-c", cmd.command], cwd=sandbox.root, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=scaled(30))
    got = output_lines(p.stdout.decode("utf-8", errors="replace"))
    want = output_lines("\n".join(cmd.output))
    shown = "%s: $ %s\n(exit status %d)\n--- documented output\n%s\n--- real output\n%s" % (
        cmd.where, cmd.command, p.returncode, "\n".join(want), "\n".join(got))
    assert len(got) == len(want), "the output has %d lines, the docs show %d\n%s" % (len(got), len(want), shown)
    for n, (w, g) in enumerate(zip(want, got)):
        if w.startswith("{") and g.startswith("{"):
            doc = parse_json(w, cmd.where)
            try:
                real = json.loads(g)
            except ValueError:
                real = g
            problem = mismatch(doc, real, ids, cmd.where)
            assert problem is None, "output line %d: %s\n%s" % (n + 1, problem, shown)
        else:
            assert g == w, "output line %d differs\n%s" % (n + 1, shown)


def run_session(sandbox, session):
    sandbox.reset()
    ids = LeaseIds()
    conns = {}
    unanswered = {}         # connection name -> documented requests without their answer yet

    def conn(name):
        if name not in conns:
            conns[name] = Client(sandbox.sock, timeout=15)
            unanswered[name] = []
        return conns[name]

    try:
        for block in session.blocks:
            for item in block.before + block.items:
                if isinstance(item, Command):
                    run_command(sandbox, block, item, ids)
                    continue
                c = conn(item.conn)
                if item.direction == "→":
                    c.send(ids.substitute(item.obj, item.where))
                    unanswered[item.conn].append(item.where)
                    continue
                if "event" in item.obj:
                    real = c.wait_event(item.obj["event"], timeout=15)
                else:
                    assert unanswered[item.conn], "%s: an answer, but no request waits for one" % item.where
                    real = c.recv_response(timeout=15)
                    assert real is not None, "%s: the daemon closed the connection instead of answering" % item.where
                    unanswered[item.conn].pop(0)
                check_answer(item.text, item.obj, real, ids, item.where)
        for name, waiting in unanswered.items():
            assert not waiting, "requests whose answer is not documented: %s" % ", ".join(waiting)
    finally:
        for c in conns.values():
            c.close()


@pytest.mark.parametrize("session", SESSIONS, ids=[s.id for s in SESSIONS])
def test_example(sandbox, session):
    if session.skip:
        pytest.skip("%s: %s" % (session.id, session.skip))
    run_session(sandbox, session)


# ---------------------------------------------------------------- the extraction itself


def test_extraction_reads_every_form(tmp_path):
    (tmp_path / "x.md").write_text('''# Title

```json
{"op":"ping"}
{"ok":true}
```

## Arrows

<!-- doctest: before
→ {"op":"acquire","write":["t1"]}
other ← {"ok":true}
-->

```
→ {"op":"transact","statements":[
     {"sql":"SELECT 1"}]}
← {"ok":true}
```

<!-- doctest: continue -->
<!-- doctest: env A=1 B= -->
```console
$ printf 'a\\n' \\
    | cat
a
$ true
```

<!-- doctest: skip (because) -->
```
$ socat - UNIX-CONNECT:./run/tablelockd.sock
{"op":"ping"}
{"event":"lease_expired","lease":1}
```

```c
int main(void) { return 0; }
```
''', encoding="utf-8")
    blocks = extract(str(tmp_path / "x.md"))
    assert [b.section for b in blocks] == ["Title", "Arrows", "Arrows", "Arrows"]
    assert [(m.direction, m.obj) for m in blocks[0].items] == [("→", {"op": "ping"}), ("←", {"ok": True})]
    assert [(m.conn, m.direction) for m in blocks[1].before] == [(None, "→"), ("other", "←")]
    assert blocks[1].items[0].obj == {"op": "transact", "statements": [{"sql": "SELECT 1"}]}
    assert blocks[2].cont and blocks[2].env == {"A": "1", "B": ""}
    assert [(c.command, c.output) for c in blocks[2].items] == [("printf 'a\\n' \\\n    | cat", ["a"]),
                                                               ("true", [])]
    assert blocks[3].skip == "because" and [m.direction for m in blocks[3].items] == ["→", "←"]
    assert [s.id for s in sessions_of(blocks)] == [b.where for b in (blocks[0], blocks[1], blocks[3])]


@pytest.mark.parametrize("text, error", [
    ('```json\n{"op":"ping"\n```\n', "not one JSON object"),
    ('```json\n{"op":"ping","op":"ping"}\n```\n', "duplicate key"),
    ('```json\n{"id":1}\n```\n', 'neither "op"'),
    ('```\n→ {"op":"ping"}\nsome prose\n```\n', "neither a request"),
    ('<!-- doctest: skip -->\n```\n→ {"op":"ping"}\n```\n', "skip needs a reason"),
    ('<!-- doctest: frob -->\n```\n→ {"op":"ping"}\n```\n', "unknown doctest directive"),
    ('<!-- doctest: continue -->\n```\n→ {"op":"ping"}\n```\n', "no example block before it"),
    ('<!-- doctest: skip (x) -->\nprose\n```\n→ {"op":"ping"}\n```\n', "not right before a code block"),
    ('<!-- doctest: skip (x) -->\n```c\nint x;\n```\n', "holds no example"),
    ('<!-- doctest: before\n→ ping\n-->\n```\n→ {"op":"ping"}\n```\n', "a before line must be"),
    ('```\n$ socat - UNIX-CONNECT:/tmp/other.sock\n{"op":"ping"}\n```\n', "not the sandbox's"),
    ('```\n→ {"op":"ping"}\n', "unterminated code block"),
    ('→ {"op":"ping"}\n', "outside a code block"),
])
def test_extraction_refuses_what_it_cannot_read(tmp_path, text, error):
    (tmp_path / "x.md").write_text(text, encoding="utf-8")
    with pytest.raises(ExtractionError) as e:
        sessions_of(extract(str(tmp_path / "x.md")))
    assert error in str(e.value)
