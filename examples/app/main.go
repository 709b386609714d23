// A tiny compiled server: the case where a sync alone changes nothing until the process is re-run.
// It logs one "started" line per start (with its PID), and serves the greeting it read at start-up.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	greetingFile := env("GREETING_FILE", "/app/data/greeting.txt")
	greeting := "hello (no greeting file yet)"
	if data, err := os.ReadFile(greetingFile); err == nil {
		greeting = strings.TrimSpace(string(data))
	}
	log.Printf("started pid=%d greeting=%q", os.Getpid(), greeting)

	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s (pid %d)\n", greeting, os.Getpid())
	})
	log.Fatal(http.ListenAndServe(":"+env("PORT", "8080"), nil))
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
