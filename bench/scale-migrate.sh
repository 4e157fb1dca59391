# The migrate scenario of bench/scale.sh (sourced by it; uses its figure, BIN and WORK):
# `caravel migrate` of the size's SQLite database into a new, empty PostgreSQL database of a
# throwaway cluster (bench/lib.sh's pg_cluster: started on first use, stopped at exit), or of
# BENCH_PG_URL's server (bench/engines.sh passes its own cluster so).
# Reported: the migrate command's wall time (schema, COPY of every table, sequences, the
# count-and-sum checks, COMMIT), rows copied per second, and, measured in the same run as the
# reference, `sqlite3 .backup` of the same file (a page copy: the floor for reading it) and
# `pg_dump` of the migrated database (PostgreSQL's own dump of the same rows).
#   SCALE_SCENARIOS=migrate bash bench/scale.sh 1000 10000 100000
MIGRATE_PG_URL=

# ms_since T0 (date +%s%N) -> milliseconds
ms_since () { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

migrate_cluster () {
  [ -z "$MIGRATE_PG_URL" ] || return 0
  chmod 711 "$WORK" # the cluster runs as an unprivileged user when this runs as root
  pg_cluster "$WORK/pg"
  MIGRATE_PG_URL=$PG_BASE
}

migrate_cleanup () { pg_cluster_stop; }

scenario_migrate () {
  local size=$1 db=$2 t0 ms rows target
  migrate_cluster
  target=$(pg_create "migrate_$size")
  t0=$(date +%s%N)
  if ! "$BIN" migrate --from "sqlite://$db" --to "$target" > "$WORK/migrate-$size.txt" 2>&1; then
    cat "$WORK/migrate-$size.txt" >&2; return 1
  fi
  ms=$(ms_since "$t0")
  rows=$(sed -n 's/^migrate: copied [0-9]* tables, \([0-9]*\) rows.*/\1/p' "$WORK/migrate-$size.txt")
  figure "$size" "migrate SQLite -> PostgreSQL" "$ms" ms
  figure "$size" "rows copied" "$rows" rows
  figure "$size" "rows per second" "$(( rows * 1000 / (ms > 0 ? ms : 1) ))" rows/s
  t0=$(date +%s%N)
  sqlite3 "$db" ".backup '$WORK/backup-$size.db'"
  figure "$size" "reference: sqlite3 .backup of the same file" "$(ms_since "$t0")" ms
  rm -f "$WORK/backup-$size.db"
  t0=$(date +%s%N)
  pg_dump -d "$target" -f /dev/null
  figure "$size" "reference: pg_dump of the migrated database" "$(ms_since "$t0")" ms
  psql -X -q -d "$MIGRATE_PG_URL" -c "DROP DATABASE ${PG_PREFIX}migrate_$size"
}
