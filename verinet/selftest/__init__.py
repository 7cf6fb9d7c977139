"""The soundness self-test: networks with planted counterexamples (:mod:`.planted`), run
through every engine (:mod:`.run`), scored right / wrong / unknown per engine."""
