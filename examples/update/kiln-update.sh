#!/bin/sh
# Re-pins the recipes of a git checkout with `kiln update` and, when anything moved, commits
# the new recipes and locks on a branch (the Markdown report is the commit body, ready to be
# a pull-request description) and pushes that branch. Used by the CI examples and the systemd
# service beside this file.
#
#   kiln-update.sh [RECIPE...]          default: every recipes/*/recipe.toml
#
# Environment (all optional):
#   KILN_UPDATE_BRANCH   the branch the new pins go to (default: kiln/update)
#   KILN_UPDATE_REMOTE   where it is pushed (default: origin; empty: do not push)
#   KILN_UPDATE_DB       OSV records (a directory or an osv.dev zip): scan both images
#   KILN_UPDATE_OUT      where the reports are written (default: kiln-update, not committed)
#   KILN_UPDATE_ARGS     more `kiln update` arguments (e.g. "--push docker://…")
#
# Exit status: 0 nothing to update or the branch was pushed, else kiln's or git's.
set -eu

branch="${KILN_UPDATE_BRANCH:-kiln/update}"
remote="${KILN_UPDATE_REMOTE-origin}"
out="${KILN_UPDATE_OUT:-kiln-update}"
[ "$#" -gt 0 ] || set -- recipes/*/recipe.toml
mkdir -p "$out"

set -- "$@" --report "$out/report.md" --json "$out/report.json"
[ -z "${KILN_UPDATE_DB:-}" ] || set -- "$@" --db "$KILN_UPDATE_DB"
status=0
# shellcheck disable=SC2086 # word splitting of the extra arguments is intended
kiln update "$@" ${KILN_UPDATE_ARGS:-} || status=$?
case "$status" in
0)
    echo "kiln-update: nothing to update"
    exit 0
    ;;
1) ;;
*)
    echo "kiln-update: kiln update failed (exit status $status)" >&2
    exit "$status"
    ;;
esac

# Only recipes and their locks are committed: the reports and images stay out of the branch.
git checkout -q -B "$branch"
changed=$(git status --porcelain --untracked-files=no -- '*.toml' '*.lock' | cut -c4-)
[ -n "$changed" ] || { echo "kiln-update: kiln reported changes, git sees none" >&2; exit 2; }
# shellcheck disable=SC2086 # one path per line, no spaces in recipe paths
git add -- $changed
{
    printf 'kiln update: new pins\n\n'
    cat "$out/report.md"
} | git -c user.name="${GIT_AUTHOR_NAME:-kiln update}" \
    -c user.email="${GIT_AUTHOR_EMAIL:-kiln-update@localhost}" commit -q -F -
echo "kiln-update: committed $(git rev-parse --short HEAD) on $branch"
if [ -n "$remote" ]; then
    git push -q --force "$remote" "$branch"
    echo "kiln-update: pushed $branch to $remote"
fi
