// Command sqliteprog embeds SQLite through cgo so that its binary is a large
// C program with DWARF, for the symbol readers' tests and benchmarks. It
// opens an in-memory database and runs a query.
package main

import (
	"database/sql"
	"fmt"
	"log"

	_ "github.com/mattn/go-sqlite3"
)

func main() {
	db, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`create table t(n integer, s text); insert into t values (1, 'one'), (2, 'two'), (3, 'three')`); err != nil {
		log.Fatal(err)
	}
	var sum int
	var names string
	if err := db.QueryRow(`select sum(n), group_concat(s, ',') from t`).Scan(&sum, &names); err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum, names)
}
