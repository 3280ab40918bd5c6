"""The scheduled run (``ecopatch run CONFIG.toml``): everything new since the last run, unattended.

========================  ==============================================================
module                    holds
========================  ==============================================================
:mod:`.config`            the TOML configuration, validated from the options' fields
:mod:`.discovery`         the scenes of the imagery folder or STAC catalog
:mod:`.baseline`          each scene's baseline and history, each mine's reference
:mod:`.lock`              one run per ledger at a time
:mod:`.manifest`          run folders, manifests, checksums
:mod:`.context`           the state of one run, its layers and clear-sky shares
:mod:`.scene`             one scene: analyses, outputs, ledger transaction
:mod:`.outcome`           exit codes, scene outcomes, the run's result
:mod:`.logs`              run.log and warnings to the log
:mod:`.pipeline`          :func:`~ecopatch.run.pipeline.run_pipeline`, the whole job
:mod:`.demo`              the self-contained demonstration on synthetic data
========================  ==============================================================
"""
