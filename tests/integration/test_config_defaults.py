"""Every config key's default, said in four places, says the same thing;
and the man page's range for every number is the key table's.

conf/conf.c's key table is what the daemon does. The sample config
(conf/tablelockd.conf: a default set, or a ";key = example" line for a key
that is unset), tablelockd.conf(5) (its KEYS table and each key's
"Default ..." sentence) and README.md's configuration table repeat it for
people; each is compared with the key table here, key by key, so that none
can drift. (The man page's KEYS table and reload column are also checked by
test_ops_files.py.)

Needs no MariaDB and no daemon.
"""

import re
from pathlib import Path

from test_ops_files import conf_keys, man_key_table

ROOT = Path(__file__).resolve().parents[2]
UNSET = None

# Keys the sample sets although they have no default: it is the installed
# config, and the daemon needs an address to listen on.
SAMPLE_SETS_UNDEFAULTED = {("daemon", "listen")}


def sample_settings():
    """{(section, key): value, or UNSET for a key only shown as ";key = example"}."""
    found, section = {}, None
    for line in (ROOT / "conf" / "tablelockd.conf").read_text().splitlines():
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r"(;?)(\w+) = (.*)", line)
        if not m or section == "tokens":
            continue
        key = (section, m.group(2))
        if m.group(1):
            found.setdefault(key, UNSET)
        else:
            assert found.get(key) is UNSET, "the sample sets [%s] %s twice" % key
            found[key] = m.group(3)
    return found


def man_default_sentences():
    """{(section, key): the value of the "Default ..." sentence in the key's
    description in tablelockd.conf(5), or UNSET when it has none}."""
    text = (ROOT / "man" / "tablelockd.conf.5").read_text()
    found = {}
    for m in re.finditer(r"^\.Ss The \[(\w+)\] section\n(.*?)(?=^\.Ss |^\.Sh )", text, re.M | re.S):
        section, body = m.group(1), m.group(2)
        for item in re.finditer(r"^\.It Cm (\w+)\b.*?\n(.*?)(?=^\.It Cm |^\.El)", body, re.M | re.S):
            key, desc = item.group(1), item.group(2)
            found[(section, key)] = man_default_of(desc)
    return found


def man_default_of(desc):
    """The value after "Default" in an mdoc description: on the same line
    ("Default 1M."), in the macro line that follows ("Default\\n.Pa /x ;"),
    or in the literal display after "Default, ...:"."""
    lines = desc.splitlines()
    for i, line in enumerate(lines):
        if not re.match(r"Default\b", line):
            continue
        rest = line[len("Default"):].strip()
        if rest.startswith(","):  # "Default, MariaDB 10.11's own:" then a display
            j = lines.index(".Bd -literal -offset indent", i)
            return lines[j + 1].strip()
        if rest:
            return re.match(r"([^\s:;,]+?)[.:;,]?(\s|$)", rest).group(1)
        macro = lines[i + 1].split()  # ".Pa /var/lib/tablelockd/lease_id ;"
        return macro[1]
    return UNSET


def readme_table():
    """{(section, key): (default or UNSET, reloads)} from README.md's
    configuration table. A row may name several keys: its default is
    theirs. The default is the cell's first `literal`; a cell without one
    ("—", "— (the daemon's)") means unset."""
    text = (ROOT / "README.md").read_text()
    start = text.index("| section | key | default | meaning | reloads |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        section, keys, default, _, reloads = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`(\w+)`", keys)
        if not names:
            assert keys.startswith("*"), "README row without a key: %r" % line
            continue  # [tokens] *name*
        literal = re.search(r"`([^`]+)`", default)
        for name in names:
            assert (section, name) not in rows, "README lists [%s] %s twice" % (section, name)
            rows[(section, name)] = (literal.group(1) if literal else UNSET, reloads)
    return rows


def compare(what, theirs, keys, value_of=lambda v: v):
    missing = sorted(set(keys) - set(theirs))
    extra = sorted(set(theirs) - set(keys))
    wrong = ["[%s] %s: %s says %r, conf.c says %r" % (s, k, what, value_of(theirs[(s, k)]), keys[(s, k)][0])
             for (s, k) in sorted(set(keys) & set(theirs))
             if value_of(theirs[(s, k)]) != keys[(s, k)][0]]
    return (["%s lacks [%s] %s" % (what, s, k) for s, k in missing]
            + ["%s has [%s] %s, which conf.c does not" % (what, s, k) for s, k in extra] + wrong)


def test_sample_config_defaults():
    keys = conf_keys()
    sample = sample_settings()
    for key in SAMPLE_SETS_UNDEFAULTED:
        assert keys[key][0] is UNSET and sample.get(key) is not UNSET
        sample[key] = UNSET
    problems = compare("conf/tablelockd.conf", sample, keys)
    assert not problems, "\n".join(problems)


def test_man_page_defaults():
    keys = conf_keys()
    sentences = man_default_sentences()
    problems = compare("tablelockd.conf(5)'s Default sentence", sentences, keys)
    # The KEYS table: the default as written, "unset", or "see below" when
    # the sentence gives it.
    for key, (default, _) in man_key_table().items():
        shown = UNSET if default == "unset" else sentences.get(key) if default == "see below" else default
        if key in keys and shown != keys[key][0]:
            problems.append("[%s] %s: the KEYS table says %r, conf.c says %r" % (*key, default, keys[key][0]))
    assert not problems, "\n".join(problems)


def test_readme_defaults_and_reloads():
    keys = conf_keys()
    table = readme_table()
    problems = compare("README.md's table", table, keys, value_of=lambda v: v[0])
    for key in sorted(set(keys) & set(table)):
        want = "yes" if keys[key][1] else "no"
        if table[key][1] != want:
            problems.append("[%s] %s: README says reloads %r, conf.c says %r" % (*key, table[key][1], want))
    assert not problems, "\n".join(problems)


def conf_ranges():
    """{(section, key): (min, max)} of conf.c's numeric keys, evaluated."""
    text = (ROOT / "conf" / "conf.c").read_text()
    table = text[text.index("conf_keys[] = {"):]
    table = table[: table.index("\n};")]
    entry = re.compile(r'\{"(\w+)",\s*"(\w+)",\s*CONF_(UINT|SIZE|MSEC|MODE),\s*CONF_FIELD\(\w+\),'
                       r"\s*([^,]+),\s*([^,]+),")
    names = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    names.update((n, int(v.rstrip("ULL"))) for n, v in re.findall(r"#define (CONF_MAX_\w+) (\d+)", text))

    def value(expr):
        expr = expr.strip()
        if re.fullmatch(r"0[0-7]+", expr):
            return int(expr, 8)
        factors = [names.get(f.strip()) or int(f) for f in expr.split("*")]
        product = 1
        for f in factors:
            product *= f
        return product

    ranges = {(s, k): (t, value(lo), value(hi)) for s, k, t, lo, hi in entry.findall(table)}
    assert ranges, "conf.c's key table changed shape: update conf_ranges()"
    return ranges


def man_number(text, octal):
    m = re.fullmatch(r"(\d+)([KMG]?)", text)
    return int(m.group(1), 8 if octal else 10) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def test_man_page_ranges():
    """Each numeric key's description says "MIN to MAX", as conf.c checks it."""
    text = (ROOT / "man" / "tablelockd.conf.5").read_text()
    problems = []
    for (section, key), (kind, lo, hi) in sorted(conf_ranges().items()):
        body = text[text.index(".Ss The [%s] section" % section):]
        m = re.search(r"^\.It Cm %s\b.*?(?=^\.It Cm |^\.El)" % key, body, re.M | re.S)
        said = re.search(r"\b(\d+[KMG]?) to (\d+[KMG]?)\b", " ".join(m.group(0).split()))
        if said is None:
            problems.append("[%s] %s: tablelockd.conf(5) gives no range" % (section, key))
            continue
        got = tuple(man_number(said.group(i), kind == "MODE") for i in (1, 2))
        if got != (lo, hi):
            problems.append("[%s] %s: tablelockd.conf(5) says %s, conf.c allows %d to %d"
                            % (section, key, said.group(0), lo, hi))
    assert not problems, "\n".join(problems)
