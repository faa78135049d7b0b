#!/bin/sh
# Runs every docs/examples runbook with `automan exec` and checks the exit code and a line
# of output each documents. Usage: run_examples.sh AUTOMAN EXAMPLES_DIR
set -u
automan=$1
dir=$2
data=$(mktemp -d "${TMPDIR:-/tmp}/automan-examples-XXXXXX")
trap 'rm -rf "$data"' EXIT
failed=0

# check NAME WANT_EXIT WANT_TEXT -- exec arguments...  (standard input: the file $input)
input=/dev/null
check() {
  name=$1 want=$2 text=$3
  shift 4
  out=$("$automan" exec "$@" --data "$data" < "$input" 2>&1)
  got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL $name: exit $got, want $want"; echo "$out"; failed=1
  elif ! printf '%s\n' "$out" | grep -qF -- "$text"; then
    echo "FAIL $name: output lacks \"$text\""; echo "$out"; failed=1
  else
    echo "ok   $name (exit $got)"
  fi
}

check hello 0 "the first step said: hello at" -- "$dir/hello.yaml"
printf 's3cr3t\n' > "$data/token"
input="$data/token"
check params 0 "token: given (6 characters)" -- "$dir/params.yaml" -p service=web --secret-param token
input=/dev/null
check params-secret-inline 2 "never taken from the command line" -- "$dir/params.yaml" -p service=web -p token=s3cr3t
check params-missing 2 'missing required parameter "service"' -- "$dir/params.yaml"
check timeout 3 "timed out after 2s" -- "$dir/timeout.yaml"
check restart-web 0 "web is healthy" -- "$dir/restart-web.yaml" -p service=web -p grace=0
check campaign 0 "sent to test" -- "$dir/campaign.yaml"
check reference 0 "the target name has 4 characters" -- "$dir/reference.yaml"
check dry-run 0 "nothing is executed or recorded" -- "$dir/hello.yaml" --dry-run

if ! "$automan" validate -q "$dir"/*.yaml; then
  echo "FAIL validate: the examples do not validate"; failed=1
fi
exit $failed
