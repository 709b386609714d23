module example.restart-process.dev/app

go 1.22
