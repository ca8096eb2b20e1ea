# The report's plot: scenario 1 latency and scenarios 2-3 throughput,
# tablelockd beside direct MariaDB. Run by bench/run.sh as
#   gnuplot -e "dir='bench/results'" bench/plot.gp
# with the .dat files that bench/report.py writes.
if (!exists("dir")) dir = "bench/results"

set terminal svg size 1500,520 dynamic enhanced font "sans,11" background rgb "white"
set output dir."/latency-throughput.svg"
set multiplot layout 1,2 title "tablelockd beside direct MariaDB (medians of interleaved repetitions)"

set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics scale 0 nomirror font ",9"
set grid ytics
set key below horizontal font ",10"

set title "Scenario 1: one client, one table: latency of one cycle"
set xrange [-0.6:7.6]
set ylabel "µs (log scale)"
set logscale y
set yrange [10:*]
plot dir."/s1-latency.dat" using 2:xtic(1) title "p50, unpinned", \
     "" using 3 title "p99, unpinned", \
     "" using 4 title "p50, one CPU", \
     "" using 5 title "p99, one CPU"

unset logscale y
set yrange [0:*]
set title "Scenarios 2-3: throughput"
set xrange [-0.6:3.6]
set ylabel "cycles per second"
plot dir."/s23-throughput.dat" using 2:xtic(1) title "16 clients on 16 tables", \
     "" using 3 title "64 clients on one table"
unset multiplot
