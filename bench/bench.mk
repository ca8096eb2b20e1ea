# `make bench`: builds bench/tablelock-bench (rules in bench/Makefile) and
# runs every benchmark scenario (bench/run.sh), writing bench/results/.
# Included by the top-level Makefile, which declares `bench` phony.
bench: deps-bench $(DAEMON)
	@$(MAKE) --no-print-directory -C bench
	@sh bench/run.sh

.PHONY: bench-build bench-clean
bench-build:
	@$(MAKE) --no-print-directory -C bench

clean: bench-clean
bench-clean:
	@$(MAKE) --no-print-directory -C bench clean
