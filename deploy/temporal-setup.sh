#!/bin/sh
# One-shot job (image temporalio/admin-tools): once the Temporal server answers, creates the
# namespace the app uses if it is missing and registers the search attributes that DESIGN.md
# ("Temporal names") promises ops. Safe on every `docker compose up`: whatever already exists is
# left as it is. An attribute that exists with another type is an error, because the workflows
# could not upsert it.
#
# The `temporal` CLI reads TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE (set by docker-compose.yml).
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${NAMESPACE_RETENTION:=30d}"
: "${SETUP_ATTEMPTS:=90}"
: "${SETUP_RETRY_DELAY:=2}"
export TEMPORAL_ADDRESS TEMPORAL_NAMESPACE

# name:type, as workflows/names.py SEARCH_ATTRIBUTES has them
# (tests/deploy/compose_test.py runs this script and compares).
SEARCH_ATTRIBUTES='
EnrollmentStatus:Keyword
MemberType:Keyword
ReminderCount:Int
FormDueAt:Datetime
AccountStatus:Keyword
ServiceEndDate:Datetime
CredentialBatchStatus:Keyword
WebhookEndpointStatus:Keyword
'

log() {
    printf 'temporal-setup: %s\n' "$*"
}

die() {
    printf 'temporal-setup: error: %s\n' "$*" >&2
    exit 1
}

wait_for_server() {
    attempt=1
    until temporal operator cluster health 2>/dev/null | grep -q SERVING; do
        [ "${attempt}" -lt "${SETUP_ATTEMPTS}" ] ||
            die "Temporal at ${TEMPORAL_ADDRESS} is not serving after ${attempt} attempts"
        attempt=$((attempt + 1))
        sleep "${SETUP_RETRY_DELAY}"
    done
    log "Temporal at ${TEMPORAL_ADDRESS} is serving"
}

ensure_namespace() {
    if temporal operator namespace describe --namespace "${TEMPORAL_NAMESPACE}" >/dev/null 2>&1; then
        log "namespace ${TEMPORAL_NAMESPACE} already exists"
    elif output=$(temporal operator namespace create --namespace "${TEMPORAL_NAMESPACE}" \
        --retention "${NAMESPACE_RETENTION}" --description "Member Account Enrollment" 2>&1); then
        log "namespace ${TEMPORAL_NAMESPACE} created (retention ${NAMESPACE_RETENTION})"
    else
        case ${output} in
            *"already exists"*) log "namespace ${TEMPORAL_NAMESPACE} already exists" ;;
            *) die "cannot create namespace ${TEMPORAL_NAMESPACE}: ${output}" ;;
        esac
    fi
}

# Retries because a namespace created a moment ago takes a few seconds to reach the server's
# namespace cache, and until then the server answers "namespace not found".
ensure_search_attribute() {
    name=$1
    type=$2
    attempt=1
    while ! output=$(temporal operator search-attribute create --namespace "${TEMPORAL_NAMESPACE}" \
        --name "${name}" --type "${type}" 2>&1); do
        case ${output} in
            *"different type"*) die "search attribute ${name} exists with another type than ${type}: ${output}" ;;
            *"already exists"*) break ;;
        esac
        [ "${attempt}" -lt "${SETUP_ATTEMPTS}" ] ||
            die "cannot register search attribute ${name} (${type}): ${output}"
        attempt=$((attempt + 1))
        log "search attribute ${name} not registered yet, retrying: ${output}"
        sleep "${SETUP_RETRY_DELAY}"
    done
    log "search attribute ${name} (${type}) registered"
}

wait_for_server
ensure_namespace
for entry in ${SEARCH_ATTRIBUTES}; do
    ensure_search_attribute "${entry%%:*}" "${entry#*:}"
done
log "done"
