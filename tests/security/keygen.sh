#!/usr/bin/env bash
# drover keygen: files private whatever the umask, the secret key never
# printed, --queues validated and stored, --force never follows a link
# left where the secret file goes.
. "$(dirname "$0")/../integration/lib.sh"

K="$T/keys"
mkdir -p "$K"
secret_of () { sed -n 's/^ *secret-key = "\(.*\)"$/\1/p' "$1"; }

# A permissive umask changes nothing: secret 0600, public 0644
out=$(umask 000; "$DROVER" keygen "$K/open" --role worker --queues 'billing, rep.*') \
    || fail "keygen under umask 000"
expect_eq "$(stat -c %a "$K/open_secret")" "600" "secret mode under umask 000"
expect_eq "$(stat -c %a "$K/open")" "644" "public mode under umask 000"
# ... and a strict one is kept for the public half
(umask 077; "$DROVER" keygen "$K/strict" >/dev/null) || fail "keygen under umask 077"
expect_eq "$(stat -c %a "$K/strict_secret")" "600" "secret mode under umask 077"
expect_eq "$(stat -c %a "$K/strict")" "600" "public mode under umask 077"

# The secret key is in the secret file only, and never printed
s=$(secret_of "$K/open_secret")
[ ${#s} -eq 40 ] || fail "no secret key in the secret file"
echo "$out" | grep -qF -- "$s" && fail "keygen printed the secret key"
grep -q "secret-key" "$K/open" && fail "the public certificate holds a secret key"
echo "$out" | grep -q "public key: " || fail "keygen did not print the public key"

# Role and queue list stored (normalised) in both halves
for f in "$K/open" "$K/open_secret"; do
    grep -q 'role = "worker"' "$f" || fail "role missing from $f"
    grep -qF 'queues = "billing,rep.*"' "$f" || fail "queues missing from $f: $(cat "$f")"
done
echo "$out" | grep -qF "queues: billing,rep.*" || fail "keygen did not print the queue list"
"$DROVER" keygen "$K/all" >/dev/null || fail "keygen without --queues"
grep -q "queues" "$K/all" && fail "a key without --queues carries a queue list"
"$DROVER" keygen "$K/star" --queues '*' >/dev/null || fail "keygen --queues '*'"

# Bad lists: exit 2, a message naming the problem, no files left behind
long=$(printf 'q%.0s' $(seq 129))
for bad in '' 'a,,b' ',a' 'a,' 'bad name' 'a**' '*a' 'a*b' 'é' "$long" "x,$long*"; do
    "$DROVER" keygen "$K/bad" --queues "$bad" >/dev/null 2>"$T/bad.err"
    expect_eq "$?" "2" "exit code for --queues '$bad'"
    grep -qi "queue list" "$T/bad.err" || fail "no clear message for '$bad': $(cat "$T/bad.err")"
    [ -e "$K/bad" ] || [ -e "$K/bad_secret" ] && fail "files left after a bad list '$bad'"
done
"$DROVER" keygen "$K/longest" --queues "$(printf 'q%.0s' $(seq 128))*" >/dev/null \
    || fail "a 128-byte name with * refused"
"$DROVER" keygen "$K/bad" --role root >/dev/null 2>&1
expect_eq "$?" "2" "exit code for a bad role"

# Existing files are kept unless --force
"$DROVER" keygen "$K/open" >/dev/null 2>"$T/exists.err"
expect_eq "$?" "1" "exit code when the files exist"
expect_eq "$(secret_of "$K/open_secret")" "$s" "secret kept without --force"
# --force replaces a link left at the secret path instead of writing through it
echo "precious" >"$T/target"
chmod 644 "$T/target"
rm "$K/strict_secret"
ln -s "$T/target" "$K/strict_secret"
"$DROVER" keygen "$K/strict" --force >/dev/null || fail "keygen --force"
expect_eq "$(cat "$T/target")" "precious" "file behind the link"
[ -L "$K/strict_secret" ] && fail "the secret path is still a link"
expect_eq "$(stat -c %a "$K/strict_secret")" "600" "secret mode after --force"
# --force over a world-readable secret leaves a private one
chmod 644 "$K/all_secret"
"$DROVER" keygen "$K/all" --force >/dev/null || fail "keygen --force over 0644"
expect_eq "$(stat -c %a "$K/all_secret")" "600" "secret mode after replacing a 0644 one"
pass "keygen"
